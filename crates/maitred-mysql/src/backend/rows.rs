//! Reading a small text result set of a query maitred composed itself (the fleet's
//! coordination queries). Server connections never negotiate CLIENT_DEPRECATE_EOF, so a
//! result set is: column count, column definitions, EOF, rows, EOF.

use super::ServerConn;
use crate::codec::packets::{self, ErrInfo, EOF, ERR, OK};
use crate::codec::{command, frame, CodecError};
use crate::error::BackendError;
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

/// The rows of a text result set, each column as text (`None`: SQL NULL).
pub type TextRows = Vec<Vec<Option<String>>>;

impl ServerConn {
    /// Runs one statement and reads its result set as text. Server-side errors come back
    /// as `Ok(Err(..))`; a statement without a result set gives no rows.
    pub async fn query_rows(
        &mut self,
        sql: &str,
    ) -> Result<Result<TextRows, ErrInfo>, BackendError> {
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(command::QUERY);
        p.extend_from_slice(sql.as_bytes());
        let mut out = BytesMut::new();
        frame::write_packet(&mut out, 0, &p);
        self.stream.write_all(&out).await?;

        let (_, first) = self.read_packet().await?;
        match first.first() {
            Some(&ERR) => return Ok(Err(packets::parse_err(&first)?)),
            Some(&OK) => {
                self.status = packets::parse_ok(&first)?.status;
                return Ok(Ok(Vec::new()));
            }
            _ => {}
        }
        let mut pos = 0;
        let columns =
            packets::read_lenenc(&first, &mut pos).ok_or(CodecError::Malformed("column count"))?;
        // Column definitions, then the EOF that ends them.
        for _ in 0..=columns {
            let (_, def) = self.read_packet().await?;
            if def.first() == Some(&ERR) {
                return Ok(Err(packets::parse_err(&def)?));
            }
        }
        let mut rows = Vec::new();
        loop {
            let (_, row) = self.read_packet().await?;
            match row.first() {
                Some(&ERR) => return Ok(Err(packets::parse_err(&row)?)),
                Some(&EOF) if packets::is_eof(&row) => {
                    self.status = packets::eof_status(&row)?;
                    return Ok(Ok(rows));
                }
                _ => rows.push(parse_text_row(&row, columns)?),
            }
        }
    }
}

/// One text-protocol row: each column a length-encoded string, or 0xFB for NULL.
pub fn parse_text_row(row: &[u8], columns: u64) -> Result<Vec<Option<String>>, CodecError> {
    let bad = CodecError::Malformed("text row");
    let mut pos = 0;
    let mut out = Vec::new();
    for _ in 0..columns {
        if row.get(pos) == Some(&0xfb) {
            pos += 1;
            out.push(None);
            continue;
        }
        let len = packets::read_lenenc(row, &mut pos).ok_or(bad.clone())?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .ok_or(bad.clone())?;
        let bytes = row.get(pos..end).ok_or(bad.clone())?;
        out.push(Some(String::from_utf8_lossy(bytes).into_owned()));
        pos = end;
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_rows_with_nulls_and_strings() {
        let row = [0x01, b'7', 0xfb, 0x03, b'a', b'b', b'c'];
        assert_eq!(
            parse_text_row(&row, 3).unwrap(),
            vec![Some("7".into()), None, Some("abc".into())]
        );
        assert!(parse_text_row(&[0x05, b'a'], 1).is_err());
    }
}
