//! Certificate and key files: reading PEM chains, and refusing keys other users can read.

use crate::TlsError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        what: "certificates",
        path: path.display().to_string(),
        reason,
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect();
    let certs = certs.map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate found".to_owned()));
    }
    Ok(certs)
}

/// Refuses a private key file that other users may read, as PostgreSQL does for its own
/// `ssl_key_file`: no group or other permission bits, except that a key owned by root may
/// be readable by its group (mode 0640), for keys managed by root and shared with a service
/// group. Symlinks are followed (the mode of the file itself counts). A file that cannot be
/// inspected is left to the read that follows, which names it.
pub fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.mode() & 0o7777;
    let allowed_extra = if meta.uid() == 0 { 0o040 } else { 0 };
    if mode & 0o077 & !allowed_extra != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientTls;

    #[test]
    fn key_files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("maitred-key-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = dir.join("server.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n").expect("write");
        let set = |mode: u32| {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        let owned_by_root = std::fs::metadata(&key).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        });
        for mode in [0o600, 0o400] {
            set(mode);
            assert!(check_key_permissions(&key).is_ok(), "{mode:o}");
        }
        for mode in [0o644, 0o604, 0o660, 0o666] {
            set(mode);
            let e = check_key_permissions(&key)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(&key.display().to_string()), "{e}");
            assert!(e.contains("chmod 600"), "{e}");
            assert!(!e.contains("not-a-real-key"), "{e}");
        }
        // 0640: only for a root-owned key.
        set(0o640);
        assert_eq!(
            check_key_permissions(&key).is_ok(),
            owned_by_root.unwrap_or(false)
        );
        // ClientTls::load refuses it before reading anything.
        set(0o644);
        let e = ClientTls::load(&key, &key, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("chmod 600"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
