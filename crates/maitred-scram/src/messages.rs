//! Parsing the client's messages (RFC 5802 section 7):
//!
//! ```text
//! client-first = gs2-header client-first-bare   gs2-header = cbind-flag "," [authzid] ","
//! client-first-bare = [reserved-mext ","] username "," nonce ["," extensions]
//! client-final = "c=" base64(gs2-header) "," "r=" nonce ["," extensions] ",p=" proof
//! ```
//!
//! Channel binding: maitred supports none. A client that asks for it (`p=...`) is refused;
//! `n` (no support) and `y` (the client supports it but thinks the server does not) are
//! accepted, as PostgreSQL and MongoDB servers without channel binding do.

use crate::ScramError;

/// A client-first message, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    /// The gs2-header (`n,,`), which client-final's `c=` must repeat in base64.
    pub gs2_header: &'a str,
    /// client-first-message-bare, the start of the AuthMessage.
    pub bare: &'a str,
    /// The client's nonce (`r=`), never empty.
    pub nonce: &'a str,
}

/// Parses client-first. Mandatory extensions (`m=`) are refused: maitred knows none.
pub fn parse_client_first(msg: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    let text =
        std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("client-first is not UTF-8"))?;
    let (gs2_header, bare) = split_gs2_header(text)?;
    let mut nonce = None;
    for attr in bare.split(',') {
        if let Some(r) = attr.strip_prefix("r=") {
            nonce = Some(r);
        } else if attr.starts_with("m=") {
            return Err(ScramError::Malformed("mandatory extension"));
        }
    }
    let nonce = nonce.ok_or(ScramError::Malformed("missing nonce"))?;
    if nonce.is_empty() {
        return Err(ScramError::Malformed("nonce"));
    }
    Ok(ClientFirst {
        gs2_header,
        bare,
        nonce,
    })
}

/// The user name of client-first (`n=`), with `=2C` and `=3D` decoded. PostgreSQL ignores
/// it (the startup packet names the user); MongoDB reads the user from it.
pub fn client_first_user(msg: &[u8]) -> Result<String, ScramError> {
    let text =
        std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("client-first is not UTF-8"))?;
    let bare = split_gs2_header(text)?.1;
    bare.split(',')
        .find_map(|attr| attr.strip_prefix("n="))
        .map(|n| n.replace("=2C", ",").replace("=3D", "="))
        .ok_or(ScramError::Malformed("missing user name"))
}

/// Splits client-first into its gs2-header and the bare message, checking the channel
/// binding flag.
fn split_gs2_header(text: &str) -> Result<(&str, &str), ScramError> {
    let (flag, rest) = text
        .split_once(',')
        .ok_or(ScramError::Malformed("gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBindingUnsupported),
        _ => return Err(ScramError::Malformed("channel binding flag")),
    }
    let (_authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("gs2 header"))?;
    Ok((&text[..text.len() - bare.len()], bare))
}

/// A client-final message, parsed but not checked (the exchange checks it against its
/// client-first and server-first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    /// client-final-message-without-proof, the end of the AuthMessage.
    pub without_proof: &'a str,
    /// `c=`: base64 of the gs2-header (and channel binding data, which maitred has none of).
    pub channel_binding: &'a str,
    /// `r=`: the client's and the server's nonces.
    pub nonce: Option<&'a str>,
    /// `p=`: base64 of the ClientProof.
    pub proof: &'a str,
}

/// Parses client-final.
pub fn parse_client_final(msg: &[u8]) -> Result<ClientFinal<'_>, ScramError> {
    let text =
        std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("client-final is not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("missing proof"))?;
    let mut channel_binding = None;
    let mut nonce = None;
    for attr in without_proof.split(',') {
        if let Some(c) = attr.strip_prefix("c=") {
            channel_binding = Some(c);
        } else if let Some(r) = attr.strip_prefix("r=") {
            nonce = Some(r);
        }
    }
    let channel_binding =
        channel_binding.ok_or(ScramError::Malformed("missing channel binding"))?;
    Ok(ClientFinal {
        without_proof,
        channel_binding,
        nonce,
        proof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_first() {
        let first = parse_client_first(b"n,,n=user,r=abc").expect("valid");
        assert_eq!(first.gs2_header, "n,,");
        assert_eq!(first.bare, "n=user,r=abc");
        assert_eq!(first.nonce, "abc");
        let first = parse_client_first(b"y,a=admin,n=user,r=abc").expect("y is accepted");
        assert_eq!(first.gs2_header, "y,a=admin,");
        assert_eq!(
            client_first_user(b"n,,n=a=2Cb=3Dc,r=abc").as_deref(),
            Ok("a,b=c")
        );
    }

    #[test]
    fn refuses_malformed_client_first() {
        let err = |m: &[u8]| parse_client_first(m).err();
        let bad = |m| Some(ScramError::Malformed(m));
        assert_eq!(err(b""), bad("gs2 header"));
        assert_eq!(err(b"n,"), bad("gs2 header"));
        assert_eq!(err(b"x,,n=,r=abc"), bad("channel binding flag"));
        assert_eq!(
            err(b"p=tls-server-end-point,,n=,r=abc"),
            Some(ScramError::ChannelBindingUnsupported)
        );
        assert_eq!(err(b"n,,n=user"), bad("missing nonce"));
        assert_eq!(err(b"n,,n=user,r="), bad("nonce"));
        assert_eq!(err(b"n,,n=,m=ext,r=abc"), bad("mandatory extension"));
        assert_eq!(err(b"n,,n=\xff,r=abc"), bad("client-first is not UTF-8"));
        assert_eq!(
            client_first_user(b"n,,r=abc").err(),
            Some(ScramError::Malformed("missing user name"))
        );
    }

    #[test]
    fn parses_and_refuses_client_final() {
        let fin = parse_client_final(b"c=biws,r=abcdef,p=cHJvb2Y=").expect("valid");
        assert_eq!(fin.without_proof, "c=biws,r=abcdef");
        assert_eq!(fin.channel_binding, "biws");
        assert_eq!(fin.nonce, Some("abcdef"));
        assert_eq!(fin.proof, "cHJvb2Y=");
        let err = |m: &[u8]| parse_client_final(m).err();
        let bad = |m| Some(ScramError::Malformed(m));
        assert_eq!(err(b"c=biws,r=abcdef"), bad("missing proof"));
        assert_eq!(err(b"r=abcdef,p=cHJvb2Y="), bad("missing channel binding"));
        assert_eq!(err(b"c=biws,\xff,p=x"), bad("client-final is not UTF-8"));
        assert_eq!(parse_client_final(b"c=biws,p=x").map(|f| f.nonce), Ok(None));
    }
}
