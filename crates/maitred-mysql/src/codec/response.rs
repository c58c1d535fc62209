//! Follows the server's response to one command, packet by packet, to find where it ends
//! and the status flags it ends with. Only the first bytes of each packet are looked at;
//! rows are never decoded.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response.html>
//! and the COM_STMT_* pages. maitred never negotiates CLIENT_DEPRECATE_EOF, so every
//! column block and every row set ends with an EOF packet.

use super::packets::{self, EOF, ERR, LOCAL_INFILE, OK};
use super::{command, status, CodecError};

/// The shape of the response a command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// One OK, EOF or ERR packet (COM_INIT_DB, COM_STMT_RESET, COM_RESET_CONNECTION,
    /// COM_SET_OPTION, COM_PING).
    Status,
    /// One or more results: OK, ERR, LOCAL INFILE request or result sets (COM_QUERY,
    /// COM_STMT_EXECUTE).
    Results,
    /// Rows then EOF, or ERR (COM_STMT_FETCH).
    Fetch,
    /// COM_STMT_PREPARE's answer.
    Prepare,
    /// Column definitions then EOF, or ERR (COM_FIELD_LIST).
    FieldList,
    /// One packet of any kind (COM_STATISTICS).
    AnyOne,
    /// No response at all (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
    Nothing,
}

impl Expect {
    /// The response shape of a command byte; `None` for commands maitred does not relay.
    pub fn of(cmd: u8) -> Option<Expect> {
        Some(match cmd {
            command::QUERY | command::STMT_EXECUTE => Expect::Results,
            command::INIT_DB
            | command::STMT_RESET
            | command::RESET_CONNECTION
            | command::SET_OPTION
            | command::PING => Expect::Status,
            command::STMT_FETCH => Expect::Fetch,
            command::STMT_PREPARE => Expect::Prepare,
            command::FIELD_LIST => Expect::FieldList,
            command::STATISTICS => Expect::AnyOne,
            command::STMT_CLOSE | command::STMT_SEND_LONG_DATA => Expect::Nothing,
            _ => return None,
        })
    }
}

/// What one packet meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More packets belong to this response.
    More,
    /// The response is complete. The status flags of its last OK/EOF, or `None` when it
    /// ended with an ERR or a packet without flags (the status is then unchanged).
    Done(Option<u16>),
    /// The server asks for a local file; the response goes on after the file is sent.
    LocalInfile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    First,
    Columns(u64),
    ColumnsEof,
    Rows,
    PrepFirst,
    PrepParams { params: u64, cols: u64 },
    PrepParamsEof { cols: u64 },
    PrepCols(u64),
    PrepColsEof,
    DefsUntilEof,
    RowsUntilEof,
    Single,
    AnyOne,
}

/// The scanner of one response at a time.
#[derive(Debug, Clone)]
pub struct ResponseScanner {
    state: State,
    /// The previous packet had the maximum payload: this one continues it.
    continuation: bool,
}

impl Default for ResponseScanner {
    fn default() -> Self {
        ResponseScanner {
            state: State::Idle,
            continuation: false,
        }
    }
}

impl ResponseScanner {
    /// Starts following the response of a command. `Expect::Nothing` leaves it idle.
    pub fn start(&mut self, expect: Expect) {
        self.continuation = false;
        self.state = match expect {
            Expect::Status => State::Single,
            Expect::Results => State::First,
            Expect::Fetch => State::RowsUntilEof,
            Expect::Prepare => State::PrepFirst,
            Expect::FieldList => State::DefsUntilEof,
            Expect::AnyOne => State::AnyOne,
            Expect::Nothing => State::Idle,
        };
    }

    /// Whether the next packet starts a result (OK, ERR, LOCAL INFILE or a result set) of
    /// COM_QUERY / COM_STMT_EXECUTE.
    pub fn at_result_start(&self) -> bool {
        self.state == State::First && !self.continuation
    }

    /// Whether the next packet may be an OK packet (a result of COM_QUERY /
    /// COM_STMT_EXECUTE, or the single answer of COM_INIT_DB, COM_RESET_CONNECTION...).
    pub fn may_be_ok(&self) -> bool {
        matches!(self.state, State::First | State::Single) && !self.continuation
    }

    /// Whether a response is being followed.
    pub fn is_busy(&self) -> bool {
        self.state != State::Idle
    }

    /// Takes one server packet: `len` is its payload length, `head` the part of its payload
    /// that has arrived (the whole payload for packets shorter than 64 KiB).
    pub fn on_packet(&mut self, head: &[u8], len: usize) -> Result<Step, CodecError> {
        let continues = len == super::frame::MAX_PAYLOAD;
        if std::mem::replace(&mut self.continuation, continues) {
            return Ok(Step::More);
        }
        let first = head.first().copied();
        let step = match self.state {
            State::Idle => return Err(CodecError::Unexpected("idle (unsolicited packet)")),
            State::First => match first {
                Some(OK) => self.status_end(packets::parse_ok(head)?.status),
                Some(ERR) => self.done(None),
                Some(LOCAL_INFILE) => Step::LocalInfile,
                _ => {
                    let mut pos = 0;
                    let n = packets::read_lenenc(head, &mut pos)
                        .ok_or(CodecError::Malformed("column count"))?;
                    if n == 0 {
                        return Err(CodecError::Malformed("column count"));
                    }
                    self.state = State::Columns(n);
                    Step::More
                }
            },
            State::Columns(n) => {
                if first == Some(ERR) {
                    return Ok(self.done(None));
                }
                self.state = if n > 1 {
                    State::Columns(n - 1)
                } else {
                    State::ColumnsEof
                };
                Step::More
            }
            State::ColumnsEof => match first {
                Some(ERR) => self.done(None),
                Some(EOF) if packets::is_eof(head) => {
                    let s = packets::eof_status(head)?;
                    if s & status::CURSOR_EXISTS != 0 {
                        self.done(Some(s))
                    } else {
                        self.state = State::Rows;
                        Step::More
                    }
                }
                _ => return Err(CodecError::Malformed("EOF after column definitions")),
            },
            State::Rows => match first {
                Some(ERR) => self.done(None),
                Some(EOF) if packets::is_eof(head) => self.status_end(packets::eof_status(head)?),
                _ => Step::More,
            },
            State::PrepFirst => {
                // COM_STMT_PREPARE_OK or ERR.
                match first {
                    Some(ERR) => self.done(None),
                    Some(OK) => {
                        let ok = super::stmt::parse_prepare_ok(head)?;
                        let (p, c) = (u64::from(ok.params), u64::from(ok.columns));
                        if p > 0 {
                            self.state = State::PrepParams { params: p, cols: c };
                            Step::More
                        } else if c > 0 {
                            self.state = State::PrepCols(c);
                            Step::More
                        } else {
                            self.done(None)
                        }
                    }
                    _ => return Err(CodecError::Malformed("COM_STMT_PREPARE response")),
                }
            }
            State::PrepParams { params, cols } => {
                self.state = if params > 1 {
                    State::PrepParams {
                        params: params - 1,
                        cols,
                    }
                } else {
                    State::PrepParamsEof { cols }
                };
                Step::More
            }
            State::PrepParamsEof { cols } => {
                if !packets::is_eof(head) {
                    return Err(CodecError::Malformed("EOF after parameter definitions"));
                }
                if cols > 0 {
                    self.state = State::PrepCols(cols);
                    Step::More
                } else {
                    self.done(None)
                }
            }
            State::PrepCols(n) => {
                self.state = if n > 1 {
                    State::PrepCols(n - 1)
                } else {
                    State::PrepColsEof
                };
                Step::More
            }
            State::PrepColsEof => {
                if !packets::is_eof(head) {
                    return Err(CodecError::Malformed("EOF after column definitions"));
                }
                self.done(None)
            }
            State::DefsUntilEof | State::RowsUntilEof => match first {
                Some(ERR) => self.done(None),
                Some(EOF) if packets::is_eof(head) => {
                    let s = packets::eof_status(head)?;
                    self.done(Some(s))
                }
                _ => Step::More,
            },
            State::Single => match first {
                Some(OK) => {
                    let s = packets::parse_ok(head)?.status;
                    self.done(Some(s))
                }
                Some(EOF) if packets::is_eof(head) => {
                    let s = packets::eof_status(head)?;
                    self.done(Some(s))
                }
                Some(ERR) => self.done(None),
                _ => return Err(CodecError::Malformed("status response")),
            },
            State::AnyOne => self.done(None),
        };
        Ok(step)
    }

    fn done(&mut self, s: Option<u16>) -> Step {
        self.state = State::Idle;
        Step::Done(s)
    }

    /// An OK or EOF that ends one result: the response goes on if more results exist.
    fn status_end(&mut self, s: u16) -> Step {
        if s & status::MORE_RESULTS_EXISTS != 0 {
            self.state = State::First;
            Step::More
        } else {
            self.done(Some(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expect: Expect, packets: &[&[u8]]) -> Vec<Step> {
        let mut s = ResponseScanner::default();
        s.start(expect);
        packets
            .iter()
            .map(|p| s.on_packet(p, p.len()).expect("valid"))
            .collect()
    }

    const COLDEF: &[u8] =
        b"\x03def\x00\x00\x00\x01a\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x80\x00\x00\x00\x00";

    #[test]
    fn ok_and_err_end_a_query() {
        assert_eq!(
            run(Expect::Results, &[b"\x00\x00\x00\x03\x00\x00\x00"]),
            vec![Step::Done(Some(0x0003))]
        );
        assert_eq!(
            run(Expect::Results, &[b"\xff\x10\x04#08004x"]),
            vec![Step::Done(None)]
        );
    }

    #[test]
    fn result_set_then_more_results() {
        let steps = run(
            Expect::Results,
            &[
                b"\x01",
                COLDEF,
                b"\xfe\x00\x00\x02\x00",
                b"\x011",
                b"\xfe\x00\x00\x0a\x00", // EOF with MORE_RESULTS
                b"\x00\x00\x00\x02\x00\x00\x00",
            ],
        );
        assert_eq!(
            steps,
            vec![
                Step::More,
                Step::More,
                Step::More,
                Step::More,
                Step::More,
                Step::Done(Some(0x0002))
            ]
        );
    }

    #[test]
    fn cursor_ends_after_columns() {
        let steps = run(Expect::Results, &[b"\x01", COLDEF, b"\xfe\x00\x00\x42\x00"]);
        assert_eq!(steps.last(), Some(&Step::Done(Some(0x42))));
        let steps = run(Expect::Fetch, &[b"\x00\x00\x01", b"\xfe\x00\x00\x82\x00"]);
        assert_eq!(steps, vec![Step::More, Step::Done(Some(0x82))]);
    }

    #[test]
    fn prepare_ok_with_params_and_columns() {
        let ok = b"\x00\x07\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00";
        let eof = b"\xfe\x00\x00\x02\x00";
        let steps = run(Expect::Prepare, &[ok, COLDEF, COLDEF, eof, COLDEF, eof]);
        assert_eq!(steps.last(), Some(&Step::Done(None)));
        assert!(steps[..5].iter().all(|s| *s == Step::More));
        assert_eq!(
            run(
                Expect::Prepare,
                &[b"\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"]
            ),
            vec![Step::Done(None)]
        );
    }

    #[test]
    fn local_infile_and_unsolicited() {
        assert_eq!(
            run(Expect::Results, &[b"\xfbfile"]),
            vec![Step::LocalInfile]
        );
        let mut s = ResponseScanner::default();
        assert!(s.on_packet(b"\x00", 1).is_err());
    }

    #[test]
    fn continuation_packets_are_not_interpreted() {
        let mut s = ResponseScanner::default();
        s.start(Expect::Results);
        assert_eq!(s.on_packet(b"\x01", 1), Ok(Step::More));
        assert_eq!(s.on_packet(COLDEF, COLDEF.len()), Ok(Step::More));
        assert_eq!(s.on_packet(b"\xfe\x00\x00\x02\x00", 5), Ok(Step::More));
        assert_eq!(
            s.on_packet(b"\xfc", super::super::frame::MAX_PAYLOAD),
            Ok(Step::More)
        );
        // Continuation that happens to start like an EOF.
        assert_eq!(s.on_packet(b"\xfe\x00\x00\x02\x00", 5), Ok(Step::More));
        assert_eq!(
            s.on_packet(b"\xfe\x00\x00\x02\x00", 5),
            Ok(Step::Done(Some(2)))
        );
    }
}
