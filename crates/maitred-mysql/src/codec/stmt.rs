//! The fields of prepared-statement packets maitred reads or rewrites: statement ids (each
//! server connection numbers its statements itself; clients see maitred's ids) and the
//! parameter types of COM_STMT_EXECUTE (sent by clients only on the first execution, but
//! a statement may run on a different server connection each time).
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_prepare.html>
//! and <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html>.

use super::CodecError;

/// The head of COM_STMT_PREPARE_OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOk {
    pub statement_id: u32,
    pub columns: u16,
    pub params: u16,
}

/// Parses COM_STMT_PREPARE_OK: 0x00, id (4), columns (2), params (2), filler, warnings.
pub fn parse_prepare_ok(payload: &[u8]) -> Result<PrepareOk, CodecError> {
    match payload {
        [0x00, a, b, c, d, e, f, g, h, ..] => Ok(PrepareOk {
            statement_id: u32::from_le_bytes([*a, *b, *c, *d]),
            columns: u16::from_le_bytes([*e, *f]),
            params: u16::from_le_bytes([*g, *h]),
        }),
        _ => Err(CodecError::Malformed("COM_STMT_PREPARE_OK")),
    }
}

/// The statement id at bytes 1..5 of a COM_STMT_* command or of COM_STMT_PREPARE_OK.
pub fn statement_id(payload: &[u8]) -> Result<u32, CodecError> {
    payload
        .get(1..5)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(CodecError::Malformed("statement command"))
}

/// Overwrites the statement id at bytes 1..5.
pub fn set_statement_id(payload: &mut [u8], id: u32) -> Result<(), CodecError> {
    let slot = payload
        .get_mut(1..5)
        .ok_or(CodecError::Malformed("statement command"))?;
    slot.copy_from_slice(&id.to_le_bytes());
    Ok(())
}

/// Offset of the new-params-bound flag in COM_STMT_EXECUTE for `params` parameters:
/// command (1), id (4), flags (1), iteration count (4), NULL bitmap.
fn bound_flag_offset(params: usize) -> usize {
    10 + params.div_ceil(8)
}

/// The parameter types of a COM_STMT_EXECUTE that sends them (new-params-bound flag 1).
pub fn execute_param_types(payload: &[u8], params: usize) -> Result<Option<&[u8]>, CodecError> {
    if params == 0 {
        return Ok(None);
    }
    let at = bound_flag_offset(params);
    let bad = CodecError::Malformed("COM_STMT_EXECUTE");
    match payload.get(at) {
        Some(1) => payload
            .get(at + 1..at + 1 + 2 * params)
            .map(Some)
            .ok_or(bad),
        Some(0) => Ok(None),
        _ => Err(bad),
    }
}

/// A COM_STMT_EXECUTE that relies on types sent earlier, rewritten to carry `types`
/// (so that it means the same on any server connection). `None`: already carries types
/// or has no parameters.
pub fn execute_with_types(
    payload: &[u8],
    params: usize,
    types: &[u8],
) -> Result<Option<Vec<u8>>, CodecError> {
    if params == 0 || types.len() != 2 * params {
        return Ok(None);
    }
    let at = bound_flag_offset(params);
    match payload.get(at) {
        Some(0) => {
            let mut out = Vec::with_capacity(payload.len() + types.len());
            out.extend_from_slice(&payload[..at]);
            out.push(1);
            out.extend_from_slice(types);
            out.extend_from_slice(&payload[at + 1..]);
            Ok(Some(out))
        }
        Some(_) => Ok(None),
        None => Err(CodecError::Malformed("COM_STMT_EXECUTE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_ok_fields_and_ids() {
        let mut p = b"\x00\x07\x00\x00\x00\x02\x00\x01\x00\x00\x00\x00".to_vec();
        assert_eq!(
            parse_prepare_ok(&p),
            Ok(PrepareOk {
                statement_id: 7,
                columns: 2,
                params: 1
            })
        );
        set_statement_id(&mut p, 0x01020304).expect("set");
        assert_eq!(statement_id(&p), Ok(0x01020304));
        assert!(parse_prepare_ok(b"\x00\x01").is_err());
        assert!(statement_id(b"\x17\x01").is_err());
    }

    #[test]
    fn execute_types_are_read_and_inserted() {
        // 2 params: bitmap 1 byte, bound flag 1, types 4 bytes, values.
        let with = b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x00\x0f\x00VALUES";
        assert_eq!(
            execute_param_types(with, 2),
            Ok(Some(&b"\x03\x00\x0f\x00"[..]))
        );
        let without = b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00VALUES";
        assert_eq!(execute_param_types(without, 2), Ok(None));
        let rewritten = execute_with_types(without, 2, b"\x03\x00\x0f\x00")
            .expect("valid")
            .expect("rewritten");
        assert_eq!(&rewritten[..], &with[..]);
        assert_eq!(execute_with_types(with, 2, b"\x03\x00\x0f\x00"), Ok(None));
        assert_eq!(
            execute_param_types(b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00", 0),
            Ok(None)
        );
        assert!(execute_param_types(b"\x17\x01", 2).is_err());
    }
}
