/// Which endpoints (by index into a balancer's endpoint list) a selection must
/// skip: endpoints that already failed this request, ejected ones, and so on.
pub trait Exclude {
    fn excludes(&self, endpoint: usize) -> bool;
}

/// Every endpoint is a candidate.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoExclusion;

impl Exclude for NoExclusion {
    #[inline]
    fn excludes(&self, _endpoint: usize) -> bool {
        false
    }
}

impl Exclude for [usize] {
    #[inline]
    fn excludes(&self, endpoint: usize) -> bool {
        self.contains(&endpoint)
    }
}

impl<F: Fn(usize) -> bool> Exclude for F {
    #[inline]
    fn excludes(&self, endpoint: usize) -> bool {
        self(endpoint)
    }
}
