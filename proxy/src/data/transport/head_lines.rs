//! Writing a forwarded head's header lines: the lines kept are copied from
//! the received head as they are when they are already in the form we would
//! write (almost always), adjacent ones in one copy; the rest are rewritten
//! as `name: value` CRLF, unfolded.

use std::ops::Range;

use crate::data::policy::headers;

/// Copies header lines of one parsed head (`raw`, its fields pointing into
/// it) to `out`. Call [`LineCopy::finish`] before writing anything else to
/// `out`; [`LineCopy::put`] writes a line of our own in between.
pub struct LineCopy<'r, 'o> {
    raw: &'r [u8],
    out: &'o mut Vec<u8>,
    /// Values may hold line breaks (obs-fold) and are checked for them.
    folds: bool,
    /// Lines of `raw` taken but not yet copied.
    run: Range<usize>,
}

impl<'r, 'o> LineCopy<'r, 'o> {
    /// For a response head: endpoints may fold values (RFC 9112 §5.2), and
    /// we parse them as pingora does, accepting that.
    pub fn response(raw: &'r [u8], out: &'o mut Vec<u8>) -> Self {
        Self::new(raw, out, true)
    }

    /// For a request head: the request parser refuses obs-fold, so no value
    /// holds a line break.
    pub fn request(raw: &'r [u8], out: &'o mut Vec<u8>) -> Self {
        Self::new(raw, out, false)
    }

    fn new(raw: &'r [u8], out: &'o mut Vec<u8>, folds: bool) -> Self {
        Self {
            raw,
            out,
            folds,
            run: 0..0,
        }
    }

    /// The field `name: value` of `raw`.
    pub fn copy(&mut self, name: &[u8], value: &[u8]) {
        match line(self.raw, name, value, self.folds) {
            Some(span) if span.start == self.run.end && !self.run.is_empty() => {
                self.run.end = span.end;
            }
            Some(span) => {
                self.flush();
                self.run = span;
            }
            None => self.put(name, &headers::unfold(value)),
        }
    }

    /// A line of our own (or a rewritten one).
    pub fn put(&mut self, name: &[u8], value: &[u8]) {
        self.flush();
        header_line(self.out, name, value);
    }

    pub fn finish(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        if !self.run.is_empty() {
            self.out.extend_from_slice(&self.raw[self.run.clone()]);
            self.run = 0..0;
        }
    }
}

/// Without an early exit, so the compiler compares 16 or 32 bytes at once:
/// values are short (memchr's call costs more than it saves on them).
fn has_line_feed(value: &[u8]) -> bool {
    value.iter().fold(false, |found, &b| found | (b == b'\n'))
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Where the field's line lies in `raw`, with its CRLF, if the name is
/// followed by a colon right away and the value by CRLF: the form
/// `header_line` writes. (Responses may have spaces before the colon or bare
/// LF line ends; those are rewritten.) `folds`: the value may hold a line
/// break (the parser refuses a bare CR, so an LF is what to look for).
fn line(raw: &[u8], name: &[u8], value: &[u8], folds: bool) -> Option<Range<usize>> {
    let base = raw.as_ptr() as usize;
    let start = (name.as_ptr() as usize).checked_sub(base)?;
    let value_start = (value.as_ptr() as usize).checked_sub(base)?;
    let end = value_start.checked_add(value.len())?;
    let gap = raw.get(start + name.len()..value_start)?;
    // The colon, then only the optional whitespace the parser skipped; an
    // obs-folded value is rewritten unfolded.
    if gap.first() != Some(&b':')
        || !gap[1..].iter().all(|&b| b == b' ' || b == b'\t')
        || (folds && has_line_feed(value))
    {
        return None;
    }
    match raw.get(end..end + 2) {
        Some(b"\r\n") => Some(start..end + 2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{line, LineCopy};

    #[test]
    fn the_request_parser_refuses_folded_values() {
        // What `LineCopy::request` relies on.
        let mut headers = [httparse::EMPTY_HEADER; 4];
        let mut req = httparse::Request::new(&mut headers);
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n";
        assert!(req.parse(head).is_err());
    }

    fn parse_response<'h>(
        head: &'h [u8],
        headers: &mut [httparse::Header<'h>],
    ) -> Vec<(&'h str, &'h [u8])> {
        let mut resp = httparse::Response::new(headers);
        httparse::ParserConfig::default()
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true)
            .parse_response(&mut resp, head)
            .unwrap();
        resp.headers.iter().map(|h| (h.name, h.value)).collect()
    }

    #[test]
    fn lines_are_taken_whole_only_when_already_in_canonical_form() {
        let head = b"HTTP/1.1 200 OK\r\nA: b\r\nC:d\r\nE : f\r\nG: h\nI:\r\n\r\n";
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let fields = parse_response(head, &mut headers);
        for folds in [true, false] {
            let lines: Vec<Option<&[u8]>> = fields
                .iter()
                .map(|(n, v)| line(head, n.as_bytes(), v, folds).map(|r| &head[r]))
                .collect();
            let expected: [Option<&[u8]>; 5] = [
                Some(b"A: b\r\n"),
                Some(b"C:d\r\n"),
                None, // space before the colon: rewritten
                None, // bare LF: rewritten
                Some(b"I:\r\n"),
            ];
            assert_eq!(lines, expected);
        }
        // Slices from elsewhere are never taken for lines of `head`.
        assert_eq!(line(head, b"A", b"b", true), None);
        let other = b"A: b\r\n".to_vec();
        assert_eq!(line(head, &other[..1], &other[3..4], true), None);
    }

    /// What `LineCopy` writes for the fields of `head` it is given.
    fn copied(head: &[u8], keep: impl Fn(&str) -> bool) -> String {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let fields = parse_response(head, &mut headers);
        let mut out = b"[".to_vec();
        let mut copy = LineCopy::response(head, &mut out);
        for (name, value) in &fields {
            if keep(name) {
                copy.copy(name.as_bytes(), value);
            }
            if *name == "Put-After" {
                copy.put(b"Ours", b"1");
            }
        }
        copy.finish();
        out.push(b']');
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn kept_lines_keep_their_order_and_bytes_around_dropped_and_rewritten_ones() {
        let head = b"HTTP/1.1 200 OK\r\nA: 1\r\nB:2\r\nDrop: x\r\nC: 3\r\nPut-After: 4\r\nD : 5\r\nE:\t6\r\n\r\n";
        assert_eq!(
            copied(head, |n| n != "Drop"),
            "[A: 1\r\nB:2\r\nC: 3\r\nPut-After: 4\r\nOurs: 1\r\nD: 5\r\nE:\t6\r\n]"
        );
        assert_eq!(copied(head, |_| false), "[Ours: 1\r\n]");
        assert_eq!(
            copied(head, |n| n == "A" || n == "E"),
            "[A: 1\r\nOurs: 1\r\nE:\t6\r\n]"
        );
    }

    #[test]
    fn folded_values_are_unfolded_and_the_others_still_copied() {
        let head = b"HTTP/1.1 200 OK\r\nA: 1\r\nFolded: x\r\n  y\r\nB: 2\r\n\r\n";
        assert_eq!(copied(head, |_| true), "[A: 1\r\nFolded: x y\r\nB: 2\r\n]");
    }

    proptest::proptest! {
        /// Whatever mix of separators, line ends and folds an endpoint sends,
        /// the lines written read back as the fields kept, in order, values
        /// unfolded, every line ending in CRLF and none folded.
        #[test]
        fn what_is_written_reads_back_as_the_fields_kept(
            fields in proptest::collection::vec(
                (0..4usize, 0..4usize, 0..3usize, proptest::bool::ANY, proptest::bool::ANY),
                0..10,
            ),
            blank_first in proptest::bool::ANY,
        ) {
            const NAMES: [&str; 4] = ["A", "Bb", "Content-Type", "X-Y"];
            const SEPARATORS: [&str; 4] = [":", ": ", " : ", ":\t"];
            const VALUES: [&str; 3] = ["v", "x\r\n  y", "a b"];
            let mut head = String::from(if blank_first { "\r\n" } else { "" });
            head += "HTTP/1.1 200 OK\r\n";
            for &(n, sep, v, bare_lf, _) in &fields {
                head += NAMES[n];
                head += SEPARATORS[sep];
                head += VALUES[v];
                head += if bare_lf { "\n" } else { "\r\n" };
            }
            head += "\r\n";
            let keep: Vec<bool> = fields.iter().map(|f| f.4).collect();
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let parsed = parse_response(head.as_bytes(), &mut headers);
            let mut out = Vec::new();
            let mut copy = LineCopy::response(head.as_bytes(), &mut out);
            let mut expected = Vec::new();
            for ((name, value), keep) in parsed.iter().zip(&keep) {
                if *keep {
                    copy.copy(name.as_bytes(), value);
                    expected.push((name.to_string(), super::headers::unfold(value).to_vec()));
                }
            }
            copy.finish();
            let text = String::from_utf8(out.clone()).unwrap();
            proptest::prop_assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
            proptest::prop_assert!(!text.contains("\r\n ") && !text.contains("\r\n\t"));
            let reread = [b"HTTP/1.1 200 OK\r\n".as_slice(), &out, b"\r\n"].concat();
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let got: Vec<(String, Vec<u8>)> = parse_response(&reread, &mut headers)
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
