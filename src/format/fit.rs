//! Fits one message into an output's `max_message_bytes` by shortening
//! values before they are escaped, so the result is still a CEF record.
//!
//! Cutting the finished bytes instead can split an escape (leaving a
//! dangling `\`) or the CEF header, and receivers then reject the whole
//! record. Values give way in this order, and identifying values
//! (`Shortening::Keep`, the event class id, the severity and the syslog
//! header) never do:
//!
//! 1. Free text (the Name and `Shortening::Cut` values) is cut to a
//!    common byte level, so the longest values lose most and short ones
//!    stay whole. The level stays at or above [`MIN_CUT_BYTES`]: when that
//!    is not enough, `Cut` values are omitted whole with their labels,
//!    last pair first, and the rest are levelled again.
//! 2. If every `Cut` value is gone and the Name is down to
//!    [`NAME_MIN_CHARS`], `Shortening::Omit` values are omitted whole,
//!    last pair first.
//!
//! A message that fits is encoded once. One that does not is encoded at
//! most twice more, plus once per omitted `Omit` pair, because the
//! sizes of step 1 are computed from the escaped prefix sizes.

use super::cef::{CefHeader, Extension, NAME_MAX_CHARS, PairSize, Shortening};

/// Characters of the Name kept when every other free-text value is
/// gone, enough to tell alerts apart in a SIEM's event list.
pub const NAME_MIN_CHARS: usize = 16;

/// The lowest level, in escaped bytes, that values are cut to. A shorter
/// stub carries little information while its key and label still cost
/// bytes, so the value is omitted instead.
pub const MIN_CUT_BYTES: usize = 16;

/// The outcome of fitting a message into its byte budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fitted {
    /// Written in full.
    Whole,
    /// Written with free-text values cut or optional values omitted.
    Shortened,
    /// Over the budget even in its shortest form, which is what was
    /// written. The output's oversize policy decides what happens next.
    TooLong,
}

/// The parts of one message that the fitter encodes and shortens.
pub struct Draft<'a> {
    /// The syslog header, up to and including the space before MSG.
    pub syslog_header: &'a str,
    pub cef_header: CefHeader<'a>,
    pub extension: Extension,
}

impl Draft<'_> {
    /// Replaces `out` with the message, the Name cut to `name_chars`.
    fn write(&self, name_chars: usize, out: &mut String) {
        out.clear();
        out.push_str(self.syslog_header);
        self.cef_header.encode_with_name_limit(name_chars, out);
        self.extension.encode(out);
    }
}

/// Writes the message of `draft` into `out` (replacing its contents),
/// shortened as the module documentation describes when it would
/// exceed `max_bytes` bytes.
pub fn encode_within(mut draft: Draft<'_>, max_bytes: usize, out: &mut String) -> Fitted {
    draft.write(NAME_MAX_CHARS, out);
    if out.len() <= max_bytes {
        return Fitted::Whole;
    }

    let cuts = cuttable_values(&draft);
    let excess = out.len() - max_bytes;
    let floor: Vec<usize> = cuts.iter().map(Cuttable::min_chars).collect();
    // The floor is retried when the plan misses. That happens only when
    // no pair remains, because the sizes count a space before every
    // pair and the first pair written has none.
    let plans = match plan_cuts(&cuts, excess) {
        Some(plan) => vec![plan, floor],
        None => vec![floor],
    };
    let mut name_chars = NAME_MAX_CHARS;
    for plan in plans {
        name_chars = apply_plan(&cuts, &plan, &mut draft.extension);
        draft.write(name_chars, out);
        if out.len() <= max_bytes {
            return Fitted::Shortened;
        }
    }

    for index in omittable_pairs(&draft.extension) {
        draft.extension.limit_chars(index, 0);
        draft.write(name_chars, out);
        if out.len() <= max_bytes {
            return Fitted::Shortened;
        }
    }
    Fitted::TooLong
}

/// A free-text value and the sizes of its escaped prefixes.
struct Cuttable {
    slot: Slot,
    /// Element `k` is the escaped size of the first `k` characters.
    prefix_bytes: Vec<usize>,
    /// Characters never cut: [`NAME_MIN_CHARS`] for the Name, else 0.
    min_chars: usize,
    /// Bytes saved besides the value when it is omitted.
    overhead_bytes: usize,
}

#[derive(Clone, Copy)]
enum Slot {
    Name,
    Pair(usize),
}

impl Cuttable {
    fn full_chars(&self) -> usize {
        self.prefix_bytes.len() - 1
    }

    fn full_bytes(&self) -> usize {
        self.bytes_at(self.full_chars())
    }

    fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// Returns the most characters whose escaped size is at most `level`
    /// bytes, but never fewer than `min_chars`.
    fn chars_within(&self, level: usize) -> usize {
        let fitting = self.prefix_bytes.partition_point(|&size| size <= level);
        // `prefix_bytes[0]` is 0, so at least one prefix fits.
        (fitting - 1).max(self.min_chars)
    }

    /// Returns the bytes the value takes in the message at `chars`.
    fn bytes_at(&self, chars: usize) -> usize {
        match chars {
            0 => 0,
            _ => self.overhead_bytes + self.prefix_bytes[chars],
        }
    }

    /// Returns the bytes saved by cutting the value to `level`.
    fn saving_at(&self, level: usize) -> usize {
        self.full_bytes() - self.bytes_at(self.chars_within(level))
    }
}

fn cuttable_values(draft: &Draft<'_>) -> Vec<Cuttable> {
    let name_prefixes = super::cef::header_prefix_bytes(draft.cef_header.name, NAME_MAX_CHARS);
    let name_chars = name_prefixes.len() - 1;
    let name = Cuttable {
        slot: Slot::Name,
        prefix_bytes: name_prefixes,
        min_chars: NAME_MIN_CHARS.min(name_chars),
        overhead_bytes: 0,
    };

    let sizes = draft.extension.pair_sizes().into_iter().enumerate();
    let pairs = sizes
        .filter(|(_, size)| size.shortening == Shortening::Cut)
        .map(|(index, size)| Cuttable {
            slot: Slot::Pair(index),
            prefix_bytes: size.prefix_bytes,
            min_chars: 0,
            overhead_bytes: size.overhead_bytes,
        });
    std::iter::once(name).chain(pairs).collect()
}

/// Returns the characters each value in `cuts` keeps so that the
/// message loses at least `excess` bytes, or `None` when even omitting
/// every `Cut` value would not be enough. `cuts[0]` is the Name, which
/// is never omitted.
fn plan_cuts(cuts: &[Cuttable], excess: usize) -> Option<Vec<usize>> {
    for omitted in 0..cuts.len() {
        let kept = cuts.len() - omitted;
        let omitted_saving: usize = cuts[kept..].iter().map(Cuttable::full_bytes).sum();
        let saving = |level| {
            let cut_saving: usize = cuts[..kept].iter().map(|cut| cut.saving_at(level)).sum();
            omitted_saving + cut_saving
        };
        if let Some(level) = water_level(saving, &cuts[..kept], excess) {
            let kept_chars = cuts[..kept].iter().map(|cut| cut.chars_within(level));
            let omitted_chars = std::iter::repeat_n(0, omitted);
            return Some(kept_chars.chain(omitted_chars).collect());
        }
    }
    None
}

/// Returns the highest level, in bytes per value, at or above
/// [`MIN_CUT_BYTES`] at which `saving(level)` reaches `excess`, or
/// `None` when none does. Savings only grow as the level falls, so a
/// binary search finds it.
fn water_level(saving: impl Fn(usize) -> usize, cuts: &[Cuttable], excess: usize) -> Option<usize> {
    if saving(MIN_CUT_BYTES) < excess {
        return None;
    }
    // At the largest value size nothing is cut, so when the omitted
    // values alone save enough, no kept value is cut.
    let longest = cuts.iter().map(Cuttable::full_bytes).max().unwrap_or(0);
    let longest = longest.max(MIN_CUT_BYTES);
    if saving(longest) >= excess {
        return Some(longest);
    }
    // Invariant: `saving(low) >= excess > saving(high)`.
    let (mut low, mut high) = (MIN_CUT_BYTES, longest);
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if saving(middle) >= excess {
            low = middle;
        } else {
            high = middle;
        }
    }
    Some(low)
}

/// Sets each pair's limit from `plan` and returns the Name's.
fn apply_plan(cuts: &[Cuttable], plan: &[usize], extension: &mut Extension) -> usize {
    let mut name_chars = NAME_MAX_CHARS;
    for (cut, &chars) in cuts.iter().zip(plan) {
        match cut.slot {
            Slot::Name => name_chars = chars,
            Slot::Pair(index) => extension.limit_chars(index, chars),
        }
    }
    name_chars
}

/// Returns the indexes of the written `Shortening::Omit` pairs, last
/// first, because the device fields at the end matter least.
fn omittable_pairs(extension: &Extension) -> Vec<usize> {
    let is_written = |size: &PairSize| size.prefix_bytes.len() > 1;
    let sizes = extension.pair_sizes().into_iter().enumerate().rev();
    sizes
        .filter(|(_, size)| size.shortening == Shortening::Omit && is_written(size))
        .map(|(index, _)| index)
        .collect()
}
