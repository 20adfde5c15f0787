//! Line-by-line reading of a JSONL corpus, plain or gzip-compressed (by the `.gz` suffix or
//! the gzip magic bytes), keeping line numbers for error reports and the count of bytes read
//! from the file for progress.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use flate2::read::MultiGzDecoder;

/// Counts the bytes read through it (the compressed bytes for a gzip file).
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A JSONL source.
pub struct JsonlReader {
    reader: Box<dyn BufRead + Send>,
    line_no: u64,
    buf: Vec<u8>,
    bytes_read: Arc<AtomicU64>,
    file_len: u64,
}

/// One line of input.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number.
    pub no: u64,
    /// The line's text, or why it is not text.
    pub text: Result<String, String>,
}

impl JsonlReader {
    /// Opens `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut magic = [0u8; 2];
        let is_gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        drop(file);
        let file = File::open(path)?;
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counting = CountingReader {
            inner: file,
            count: bytes_read.clone(),
        };
        let reader: Box<dyn BufRead + Send> = if is_gz {
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(BufReader::new(counting)),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, counting))
        };
        Ok(JsonlReader {
            reader,
            line_no: 0,
            buf: Vec::with_capacity(4096),
            bytes_read,
            file_len,
        })
    }

    /// Shared counter of bytes read from the file so far.
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        self.bytes_read.clone()
    }

    /// Size of the file on disk.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The next non-empty line; `Ok(None)` at the end; `Err` when the file cannot be read
    /// (e.g. a corrupt gzip stream), which ends the input.
    pub fn next_line(&mut self) -> anyhow::Result<Option<Line>> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .with_context(|| format!("reading input after line {}", self.line_no))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(s) => Ok(s.to_string()),
                Err(e) => Err(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
            };
            return Ok(Some(Line {
                no: self.line_no,
                text,
            }));
        }
    }
}
