//! Checking the field tables of method frames (`connection.start`, `queue.declare`,
//! `basic.consume`, …) before `amq-protocol`'s recursive parser sees them: a peer cannot overflow
//! the stack with a deeply nested table.

use super::{MAX_NESTING, PropertiesError};

fn split_u32(bytes: &[u8]) -> Result<(u32, &[u8]), PropertiesError> {
    let (word, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(PropertiesError::Malformed)?;
    Ok((u32::from_be_bytes(*word), rest))
}

/// Checks the content of a field table (entries, without the length prefix) for nesting deeper
/// than [`MAX_NESTING`] and for values the parser could not read, without recursing into
/// `amq-protocol`'s parser.
pub(crate) fn check_table_nesting(table: &[u8]) -> Result<(), PropertiesError> {
    check_nesting(table, 1)
}

/// Refuses tables whose nested tables and arrays go deeper than [`MAX_NESTING`], before the
/// recursive parser of `amq-protocol` sees them.
///
/// `table` is the content of a field table (entries without the length prefix) at `depth`.
fn check_nesting(table: &[u8], depth: usize) -> Result<(), PropertiesError> {
    if depth > MAX_NESTING {
        return Err(PropertiesError::TooDeep);
    }
    let mut rest = table;
    while !rest.is_empty() {
        let (&key_len, r) = rest.split_first().ok_or(PropertiesError::Malformed)?;
        rest = r
            .get(key_len as usize..)
            .ok_or(PropertiesError::Malformed)?;
        rest = skip_value(rest, depth)?;
    }
    Ok(())
}

/// Skips one typed value (type tag and value), checking nesting depth of tables and arrays within.
fn skip_value(bytes: &[u8], depth: usize) -> Result<&[u8], PropertiesError> {
    let (&tag, rest) = bytes.split_first().ok_or(PropertiesError::Malformed)?;
    let fixed = |n: usize| rest.get(n..).ok_or(PropertiesError::Malformed);
    match tag {
        b't' | b'b' | b'B' => fixed(1),
        b's' | b'U' | b'u' => fixed(2),
        b'I' | b'i' | b'f' => fixed(4),
        b'l' | b'L' | b'd' | b'T' => fixed(8),
        b'D' => fixed(5),
        b'V' => Ok(rest),
        b'S' | b'x' => {
            let (len, rest) = split_u32(rest)?;
            rest.get(len as usize..).ok_or(PropertiesError::Malformed)
        }
        b'F' => {
            let (len, rest) = split_u32(rest)?;
            let inner = rest.get(..len as usize).ok_or(PropertiesError::Malformed)?;
            check_nesting(inner, depth + 1)?;
            Ok(&rest[len as usize..])
        }
        b'A' => {
            let (len, rest) = split_u32(rest)?;
            let mut inner = rest.get(..len as usize).ok_or(PropertiesError::Malformed)?;
            if depth + 1 > MAX_NESTING {
                return Err(PropertiesError::TooDeep);
            }
            while !inner.is_empty() {
                inner = skip_value(inner, depth + 1)?;
            }
            Ok(&rest[len as usize..])
        }
        _ => Err(PropertiesError::Malformed),
    }
}
