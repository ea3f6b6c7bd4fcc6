//! The enrolled agent's `<data_dir>/credential` file, as the agent reads it at start: a
//! crash, a full disk or an edit can leave any bytes there, and a file that holds no
//! credential must be an error that says what to do, never a panic or a wrong credential.

use lookout_agent::credential;

/// The input is the file. What reads is checked against the format, read here apart from the
/// agent: at most [`credential::MAX_FILE_BYTES`] bytes of UTF-8 whose text, trimmed, is one
/// non-empty word without white space or control characters, short enough to be written back
/// with its line end within that bound; the credential is that word.
/// A credential read, written back as the agent writes it, reads back the same.
pub fn credential(data: &[u8]) {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| crate::scratch::process_dir("lookout-fuzz-credential-"));
    let path = dir.join(credential::FILE);
    std::fs::write(&path, data).expect("the file is written");
    let expected = (data.len() as u64 <= credential::MAX_FILE_BYTES)
        .then(|| std::str::from_utf8(data).ok())
        .flatten()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.chars().any(|c| c.is_whitespace() || c.is_control()))
        // The word and its line end, as the agent writes it back, fit in the bound.
        .filter(|t| (t.len() as u64) < credential::MAX_FILE_BYTES);
    match credential::read(&path) {
        Ok(Some(token)) => {
            assert_eq!(
                Some(token.expose()),
                expected,
                "the credential is the file's word"
            );
            credential::write(&path, &token).expect("the credential is written");
            let again = credential::read(&path).expect("it reads back");
            assert_eq!(again.as_ref().map(|t| t.expose()), Some(token.expose()));
        }
        Ok(None) => panic!("the file exists"),
        Err(e) => {
            assert_eq!(expected, None, "refused: {e}");
            assert!(
                matches!(e, credential::CredentialError::Invalid { .. }),
                "a file that reads is refused for what it holds: {e}"
            );
        }
    }
}
