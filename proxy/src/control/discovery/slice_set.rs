//! One Service's current EndpointSlices, kept in step with kube's watcher events.

use std::collections::BTreeMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::Event;

/// Slice name → latest slice of one Service.
///
/// A (re-)list is buffered and swapped in whole at `InitDone`, so the endpoints in force never
/// pass through an empty or partial state while a re-list is under way, and an error that
/// interrupts a re-list leaves them untouched.
#[derive(Debug, Default)]
pub struct SliceSet {
    current: BTreeMap<String, EndpointSlice>,
    relisting: Option<BTreeMap<String, EndpointSlice>>,
}

/// What applying one event did to the slices in force.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The slices in force may have changed.
    Changed,
    /// A list completed and replaced the slices in force.
    Listed,
    /// Nothing in force changed (a re-list is still being buffered).
    Buffered,
}

impl SliceSet {
    pub fn apply(&mut self, event: Event<EndpointSlice>) -> Applied {
        match event {
            Event::Apply(slice) => {
                self.current.insert(slice_name(&slice), slice);
                Applied::Changed
            }
            Event::Delete(slice) => {
                self.current.remove(&slice_name(&slice));
                Applied::Changed
            }
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                Applied::Buffered
            }
            Event::InitApply(slice) => {
                self.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(slice_name(&slice), slice);
                Applied::Buffered
            }
            Event::InitDone => {
                self.current = self.relisting.take().unwrap_or_default();
                Applied::Listed
            }
        }
    }

    pub fn slices(&self) -> impl Iterator<Item = &EndpointSlice> {
        self.current.values()
    }
}

fn slice_name(slice: &EndpointSlice) -> String {
    slice.metadata.name.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(name: &str) -> EndpointSlice {
        let mut slice = EndpointSlice::default();
        slice.metadata.name = Some(name.into());
        slice
    }

    fn names(set: &SliceSet) -> Vec<String> {
        set.slices().map(slice_name).collect()
    }

    #[test]
    fn applies_and_deletes_by_name() {
        let mut set = SliceSet::default();
        assert_eq!(set.apply(Event::Apply(slice("a"))), Applied::Changed);
        set.apply(Event::Apply(slice("b")));
        set.apply(Event::Apply(slice("a")));
        assert_eq!(names(&set), ["a", "b"]);
        set.apply(Event::Delete(slice("a")));
        assert_eq!(names(&set), ["b"]);
    }

    #[test]
    fn relist_replaces_in_force_slices_only_when_done() {
        let mut set = SliceSet::default();
        set.apply(Event::Apply(slice("old")));
        assert_eq!(set.apply(Event::Init), Applied::Buffered);
        assert_eq!(set.apply(Event::InitApply(slice("new"))), Applied::Buffered);
        assert_eq!(names(&set), ["old"], "partial re-list must not be in force");
        assert_eq!(set.apply(Event::InitDone), Applied::Listed);
        assert_eq!(names(&set), ["new"]);
    }

    #[test]
    fn interrupted_relist_is_discarded_by_the_next_one() {
        let mut set = SliceSet::default();
        set.apply(Event::Apply(slice("kept")));
        set.apply(Event::Init);
        set.apply(Event::InitApply(slice("half")));
        // The list failed; the watcher starts over with a fresh Init.
        set.apply(Event::Init);
        set.apply(Event::InitApply(slice("kept")));
        assert_eq!(names(&set), ["kept"]);
        set.apply(Event::InitDone);
        assert_eq!(names(&set), ["kept"]);
    }
}
