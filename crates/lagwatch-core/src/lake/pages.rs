//! Bounds on what a Parquet file's page headers claim, checked before the `parquet` crate
//! decodes the file.
//!
//! The crate (60, its record API) trusts a page header's sizes: it reserves
//! `uncompressed_page_size` bytes before decompressing a page (the snappy codec zero-fills
//! them), sizes a dictionary by the dictionary page's `num_values`, and its gzip codec
//! decompresses with `read_to_end`, whatever the header says. A few hundred hostile bytes can
//! so make it allocate gigabytes. Its page header type is private, so lagwatch walks the
//! headers itself: a small Thrift compact reader that never reads past the column chunk and
//! never allocates, over exactly the bytes the crate's page reader will read (the chunk's
//! `byte_range`, pages one after another; lagwatch never enables the page index, so the
//! crate does not use page locations).
//!
//! A page is refused when its compressed body does not fit in what is left of its chunk, its
//! uncompressed size is negative or over [`page_cap`] (a fixed maximum, and a ratio to its
//! compressed size above a floor), the pages of the file together claim more than
//! [`file_cap`], a dictionary claims more values than its bytes can hold, or (gzip) its body
//! inflates past the size its header declares, measured into a sink, never kept.

use std::io::Read;

use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};

/// No page is larger than this once decompressed. Writers cut pages at about 1 MiB
/// (parquet-mr, arrow-rs, delta-rs: `data_page_size` / dictionary page limits); this leaves
/// room for rows of very large values without letting a header reserve gigabytes.
pub const MAX_PAGE: u64 = 128 << 20;
/// A page may always claim this much uncompressed, whatever its compressed size: highly
/// repetitive pages compress past any ratio, and a page of this size is harmless.
pub const PAGE_FLOOR: u64 = 1 << 20;
/// Beyond [`PAGE_FLOOR`], a page may claim at most this many times its compressed size.
/// Deflate cannot exceed ~1032:1 and snappy ~21:1; zstd can, but only for pages of constant
/// data, which writers dictionary-encode.
pub const MAX_RATIO: u64 = 2048;
/// All pages of a file together may claim at least this much uncompressed (the floor of
/// [`file_cap`]): without it, many small pages each at [`PAGE_FLOOR`] would add up.
pub const FILE_FLOOR: u64 = 16 << 20;
/// Thrift structs nest a few levels in a page header (statistics inside a data page
/// header); deeper is hostile, and the walk recurses.
const MAX_DEPTH: usize = 16;

/// The most one page may claim once decompressed, given its compressed size.
pub fn page_cap(compressed: u64) -> u64 {
    compressed
        .saturating_mul(MAX_RATIO)
        .clamp(PAGE_FLOOR, MAX_PAGE)
}

/// The most all pages of a file of `len` bytes may claim once decompressed.
pub fn file_cap(len: u64) -> u64 {
    len.saturating_mul(MAX_RATIO).max(FILE_FLOOR)
}

/// Checks every page of the column chunks `read` selects (by leaf column index) in every row
/// group. `Err` is the reason, for a `Malformed` error.
pub fn check(
    bytes: &[u8],
    meta: &ParquetMetaData,
    read: impl Fn(usize) -> bool,
) -> Result<(), String> {
    let len = bytes.len() as u64;
    let mut budget = file_cap(len);
    for rg in meta.row_groups() {
        for (i, c) in rg.columns().iter().enumerate() {
            if read(i) {
                check_chunk(bytes, c, &mut budget)?;
            }
        }
    }
    Ok(())
}

/// Walks one column chunk's pages. The chunk was checked to lie inside the file when it was
/// opened (`delta::open_parquet`); that is checked again here, as this may be called alone.
fn check_chunk(bytes: &[u8], c: &ColumnChunkMetaData, budget: &mut u64) -> Result<(), String> {
    let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
    let chunk = usize::try_from(start)
        .ok()
        .zip(usize::try_from(c.compressed_size()).ok())
        .and_then(|(s, n)| bytes.get(s..s.checked_add(n)?))
        .ok_or("a column chunk outside the file")?;
    let min_value = min_value_bytes(c);
    let gzip = matches!(c.compression(), Compression::GZIP(_));
    let mut at = 0;
    while at < chunk.len() {
        let mut r = Thrift {
            buf: &chunk[at..],
            pos: 0,
        };
        let h = r.page_header()?;
        at += r.pos;
        let compressed = u64::try_from(h.compressed).map_err(|_| "a negative page size")?;
        let uncompressed = u64::try_from(h.uncompressed).map_err(|_| "a negative page size")?;
        let body = chunk
            .get(at..)
            .and_then(|rest| rest.get(..usize::try_from(compressed).ok()?))
            .ok_or("a page larger than its column chunk")?;
        at += body.len();
        if uncompressed > page_cap(compressed) {
            return Err(format!(
                "a page claiming {uncompressed} bytes uncompressed from {compressed} \
                 (at most {})",
                page_cap(compressed)
            ));
        }
        *budget = budget
            .checked_sub(uncompressed)
            .ok_or("pages claiming more uncompressed bytes than the file can hold")?;
        if let Some(n) = h.dictionary_values {
            let n = u64::try_from(n).map_err(|_| "a negative dictionary size")?;
            if n.saturating_mul(min_value) > uncompressed.saturating_mul(8) {
                return Err(format!(
                    "a dictionary page claiming {n} values in {uncompressed} bytes"
                ));
            }
        }
        if gzip && h.compressed_body {
            let levels = usize::try_from(h.levels_len).map_err(|_| "negative level lengths")?;
            let deflated = body.get(levels..).ok_or("level lengths beyond the page")?;
            let out = uncompressed.saturating_sub(levels as u64);
            if inflated_len(deflated, out) > out {
                return Err(format!(
                    "a gzip page inflating past the {uncompressed} bytes it declares"
                ));
            }
        }
    }
    Ok(())
}

/// The fewest bytes one PLAIN-encoded value of this column takes, in eighths of a byte (a
/// boolean is one bit): a dictionary of `n` values needs at least `n * this / 8` bytes.
fn min_value_bytes(c: &ColumnChunkMetaData) -> u64 {
    match c.column_type() {
        PhysicalType::BOOLEAN => 1,
        PhysicalType::INT32 | PhysicalType::FLOAT | PhysicalType::BYTE_ARRAY => 32,
        PhysicalType::INT64 | PhysicalType::DOUBLE => 64,
        PhysicalType::INT96 => 96,
        PhysicalType::FIXED_LEN_BYTE_ARRAY => {
            u64::try_from(c.column_descr().type_length()).map_or(8, |n| n.max(1) * 8)
        }
    }
}

/// How many bytes `body` inflates to (gzip, members concatenated, as the crate reads it),
/// counting at most `limit + 1`: into a sink, so nothing is kept. A corrupt stream counts
/// what inflated before the error (the crate then refuses the page itself).
fn inflated_len(body: &[u8], limit: u64) -> u64 {
    let mut d = flate2::read::MultiGzDecoder::new(body).take(limit.saturating_add(1));
    std::io::copy(&mut d, &mut std::io::sink()).unwrap_or(0)
}

/// What lagwatch needs of a `PageHeader` (parquet-format's Thrift definition).
#[derive(Debug, Default)]
struct PageHeader {
    uncompressed: i32,
    compressed: i32,
    /// `dictionary_page_header.num_values`, on a dictionary page.
    dictionary_values: Option<i32>,
    /// On a v2 data page: the uncompressed level bytes before the compressed values.
    levels_len: i64,
    /// False only on a v2 data page marked `is_compressed: false`.
    compressed_body: bool,
}

/// Thrift compact protocol types (the low nibble of a field header).
const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

/// A Thrift compact protocol reader over a slice: every read is checked against the end,
/// and skipping a collection reads at least a byte per element, so the work is bounded by
/// the bytes, whatever lengths they claim.
struct Thrift<'a> {
    buf: &'a [u8],
    pos: usize,
}

const TRUNCATED: &str = "a truncated or invalid page header";

impl Thrift<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or(TRUNCATED)?;
        self.pos += 1;
        Ok(b)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), String> {
        let n = usize::try_from(n).map_err(|_| TRUNCATED)?;
        let end = self.pos.checked_add(n).ok_or(TRUNCATED)?;
        if end > self.buf.len() {
            return Err(TRUNCATED.into());
        }
        self.pos = end;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(TRUNCATED.into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, String> {
        i32::try_from(self.zigzag()?).map_err(|_| TRUNCATED.into())
    }

    /// The next field of a struct: its id and type, or `None` at the struct's end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let b = self.byte()?;
        let ty = b & 0x0f;
        if ty == STOP {
            return Ok(None);
        }
        let delta = i16::from(b >> 4);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| TRUNCATED)?
        } else {
            last.checked_add(delta).ok_or(TRUNCATED)?
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    /// Skips one value of type `ty` (in a field: booleans carry no byte).
    fn skip(&mut self, ty: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("a page header nested too deep".into());
        }
        match ty {
            TRUE | FALSE => Ok(()),
            BYTE => self.skip_bytes(1),
            I16 | I32 | I64 => self.varint().map(drop),
            DOUBLE => self.skip_bytes(8),
            UUID => self.skip_bytes(16),
            BINARY => {
                let n = self.varint()?;
                self.skip_bytes(n)
            }
            LIST | SET => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.skip_elements(n, &[h & 0x0f], depth)
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                self.skip_elements(n, &[kv >> 4, kv & 0x0f], depth)
            }
            STRUCT => self.skip_struct(depth + 1),
            _ => Err(TRUNCATED.into()),
        }
    }

    /// Skips `n` collection elements of the given types: a boolean element is a byte, and
    /// any element takes at least one, so a claimed `n` past the end fails at the end.
    fn skip_elements(&mut self, n: u64, types: &[u8], depth: usize) -> Result<(), String> {
        for _ in 0..n {
            for &ty in types {
                let before = self.pos;
                match ty {
                    TRUE | FALSE => self.skip_bytes(1)?,
                    ty => self.skip(ty, depth + 1)?,
                }
                if self.pos == before {
                    return Err(TRUNCATED.into());
                }
            }
        }
        Ok(())
    }

    fn skip_struct(&mut self, depth: usize) -> Result<(), String> {
        let mut last = 0;
        while let Some((_, ty)) = self.field(&mut last)? {
            self.skip(ty, depth)?;
        }
        Ok(())
    }

    /// Reads a `PageHeader`: 2 uncompressed_page_size, 3 compressed_page_size,
    /// 7 dictionary_page_header { 1 num_values }, 8 data_page_header_v2 {
    /// 5 definition_levels_byte_length, 6 repetition_levels_byte_length, 7 is_compressed }.
    fn page_header(&mut self) -> Result<PageHeader, String> {
        let mut h = PageHeader {
            compressed_body: true,
            ..PageHeader::default()
        };
        let (mut uncompressed, mut compressed) = (None, None);
        let mut last = 0;
        while let Some((id, ty)) = self.field(&mut last)? {
            match (id, ty) {
                (2, I32) => uncompressed = Some(self.i32()?),
                (3, I32) => compressed = Some(self.i32()?),
                (7, STRUCT) => {
                    let mut last = 0;
                    while let Some((id, ty)) = self.field(&mut last)? {
                        match (id, ty) {
                            (1, I32) => h.dictionary_values = Some(self.i32()?),
                            _ => self.skip(ty, 1)?,
                        }
                    }
                }
                (8, STRUCT) => {
                    let mut last = 0;
                    while let Some((id, ty)) = self.field(&mut last)? {
                        match (id, ty) {
                            (5 | 6, I32) => h.levels_len += i64::from(self.i32()?),
                            (7, FALSE) => h.compressed_body = false,
                            _ => self.skip(ty, 1)?,
                        }
                    }
                }
                _ => self.skip(ty, 0)?,
            }
        }
        match (uncompressed, compressed) {
            (Some(u), Some(c)) => {
                h.uncompressed = u;
                h.compressed = c;
                Ok(h)
            }
            _ => Err("a page header without its sizes".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_compressed_size_between_floor_and_maximum() {
        assert_eq!(page_cap(0), PAGE_FLOOR);
        assert_eq!(page_cap(10), PAGE_FLOOR);
        assert_eq!(page_cap(4 << 10), 8 << 20);
        assert_eq!(page_cap(u64::MAX), MAX_PAGE);
        assert_eq!(file_cap(584), FILE_FLOOR);
        assert_eq!(file_cap(1 << 20), 2 << 30);
    }

    #[test]
    fn headers_are_read_and_hostile_claims_stop_at_the_end() {
        // type 0 (DATA_PAGE), uncompressed 44, compressed 40, data_page_header {1: 2}.
        let ok = [0x15, 0x00, 0x15, 88, 0x15, 80, 0x2c, 0x15, 0x04, 0x00, 0x00];
        let h = Thrift { buf: &ok, pos: 0 }.page_header().unwrap();
        assert_eq!((h.uncompressed, h.compressed), (44, 40));
        // A binary field claiming 2^62 bytes, a list claiming 2^40 elements, deep nesting.
        for bad in [
            &[0x18, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40][..],
            &[0x19, 0xf5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20],
            &[0x1c; 64],
            &[0x15, 88],
        ] {
            assert!(Thrift { buf: bad, pos: 0 }.page_header().is_err());
        }
    }
}
