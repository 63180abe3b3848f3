//! A streaming writer of stored (uncompressed) zip archives, ZIP64 when the archive needs it.
//!
//! Exports hold PNG and JPEG images, which do not compress: entries are stored as they are, so each entry is
//! written in one go (its CRC and size known before its header) and nothing of it is kept afterwards. What
//! the writer keeps is the central directory (some 60 bytes per entry), which a zip file puts at its end.
//! ZIP64 records are written only where the classic fields overflow (an entry starting past 4 GiB, more than
//! 65,534 entries, a central directory past 4 GiB), so small archives stay readable by the oldest tools.

use std::io::{self, Write};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL_DIRECTORY: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// Tag of the ZIP64 extended information extra field.
const ZIP64_EXTRA: u16 = 0x0001;
/// Version 2.0: stored entries and folders; 4.5: ZIP64.
const VERSION_DEFAULT: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// "Made by" Unix (high byte 3), so that the external attributes below are read as Unix permissions.
const MADE_BY_UNIX: u16 = (3 << 8) | VERSION_ZIP64;
/// A regular file, `rw-r--r--`.
const UNIX_FILE_ATTRIBUTES: u32 = 0o100_644 << 16;
/// Bit 11: names are UTF-8.
const FLAG_UTF8: u16 = 1 << 11;
/// 1980-01-01 00:00, the earliest DOS date: the archive's bytes depend on its content only.
const DOS_DATE: u16 = (1 << 5) | 1;
const DOS_TIME: u16 = 0;

/// Writes a zip archive entry by entry to any writer; [`ZipWriter::finish`] writes the central directory.
#[derive(Debug, Default)]
pub struct ZipWriter {
    /// Bytes written so far: where the next entry starts.
    offset: u64,
    /// The central directory records of the entries written, in order.
    central: Vec<u8>,
    entries: u64,
}

impl ZipWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes one stored entry named `name` (a `/`-separated path) holding `data`.
    pub fn add(&mut self, out: &mut impl Write, name: &str, data: &[u8]) -> io::Result<()> {
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "zip entry name too long"))?;
        // An image is far smaller; larger entries would need ZIP64 sizes in the local header too.
        let size = u32::try_from(data.len())
            .ok()
            .filter(|s| *s != u32::MAX)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "zip entry of 4 GiB or more"))?;
        let crc = crc32fast::hash(data);

        let mut header = Vec::with_capacity(30 + name.len());
        put32(&mut header, LOCAL_HEADER);
        put16(&mut header, VERSION_DEFAULT);
        put16(&mut header, FLAG_UTF8);
        put16(&mut header, 0); // stored
        put16(&mut header, DOS_TIME);
        put16(&mut header, DOS_DATE);
        put32(&mut header, crc);
        put32(&mut header, size); // compressed
        put32(&mut header, size); // uncompressed
        put16(&mut header, name_len);
        put16(&mut header, 0); // no extra field
        header.extend_from_slice(name.as_bytes());
        out.write_all(&header)?;
        out.write_all(data)?;

        // The central record points back at the local header; past 4 GiB that offset needs ZIP64.
        let zip64 = self.offset >= u64::from(u32::MAX);
        let c = &mut self.central;
        put32(c, CENTRAL_HEADER);
        put16(c, MADE_BY_UNIX);
        put16(c, if zip64 { VERSION_ZIP64 } else { VERSION_DEFAULT });
        put16(c, FLAG_UTF8);
        put16(c, 0);
        put16(c, DOS_TIME);
        put16(c, DOS_DATE);
        put32(c, crc);
        put32(c, size);
        put32(c, size);
        put16(c, name_len);
        put16(c, if zip64 { 12 } else { 0 }); // extra field length
        put16(c, 0); // comment length
        put16(c, 0); // disk number
        put16(c, 0); // internal attributes
        put32(c, UNIX_FILE_ATTRIBUTES);
        put32(c, if zip64 { u32::MAX } else { low32(self.offset) });
        c.extend_from_slice(name.as_bytes());
        if zip64 {
            put16(c, ZIP64_EXTRA);
            put16(c, 8);
            put64(c, self.offset);
        }

        self.offset += (header.len() + data.len()) as u64;
        self.entries += 1;
        Ok(())
    }

    /// Writes the central directory and the end records; the archive is complete after this.
    pub fn finish(self, out: &mut impl Write) -> io::Result<()> {
        let start = self.offset;
        let size = self.central.len() as u64;
        out.write_all(&self.central)?;
        let mut end = Vec::with_capacity(98);
        let zip64 = self.entries >= u64::from(u16::MAX)
            || start >= u64::from(u32::MAX)
            || size >= u64::from(u32::MAX);
        if zip64 {
            let record_at = start + size;
            put32(&mut end, ZIP64_END_OF_CENTRAL_DIRECTORY);
            put64(&mut end, 44); // size of the rest of this record
            put16(&mut end, MADE_BY_UNIX);
            put16(&mut end, VERSION_ZIP64);
            put32(&mut end, 0); // this disk
            put32(&mut end, 0); // disk of the central directory
            put64(&mut end, self.entries);
            put64(&mut end, self.entries);
            put64(&mut end, size);
            put64(&mut end, start);
            put32(&mut end, ZIP64_LOCATOR);
            put32(&mut end, 0);
            put64(&mut end, record_at);
            put32(&mut end, 1); // disks
        }
        // In the classic record, a field that overflows holds its maximum: readers then take the ZIP64 one.
        let entries16 = u16::try_from(self.entries).unwrap_or(u16::MAX);
        put32(&mut end, END_OF_CENTRAL_DIRECTORY);
        put16(&mut end, 0);
        put16(&mut end, 0);
        put16(&mut end, entries16);
        put16(&mut end, entries16);
        put32(&mut end, low32(size));
        put32(&mut end, low32(start));
        put16(&mut end, 0); // comment length
        out.write_all(&end)
    }
}

/// `n`, or `u32::MAX` (the ZIP64 marker) when it does not fit.
fn low32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put16(buf: &mut Vec<u8>, n: u16) {
    buf.extend_from_slice(&n.to_le_bytes());
}

fn put32(buf: &mut Vec<u8>, n: u32) {
    buf.extend_from_slice(&n.to_le_bytes());
}

fn put64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(&n.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks an archive with Python's `zipfile` (every CRC, the ZIP64 records) and returns its names and
    /// the size of each entry, as Python lists them.
    fn python_listing(archive: &[u8]) -> Vec<(String, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.zip");
        std::fs::write(&path, archive).unwrap();
        let script = "import sys, zipfile\n\
                      z = zipfile.ZipFile(sys.argv[1])\n\
                      assert z.testzip() is None, 'a bad CRC'\n\
                      for i in z.infolist(): print(i.filename, i.file_size, sep='\\t')\n";
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
            .expect("python3 runs (it checks the zip files)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let (name, size) = l.split_once('\t').unwrap();
                (name.to_owned(), size.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn a_small_archive_is_read_back_entry_by_entry() {
        let mut out = Vec::new();
        let mut zip = ZipWriter::new();
        zip.add(&mut out, "flat/é1.png", b"\x89PNG one").unwrap();
        zip.add(&mut out, "north/2.png", b"").unwrap();
        zip.add(&mut out, "labels.csv", b"file,label\n").unwrap();
        zip.finish(&mut out).unwrap();
        assert_eq!(
            python_listing(&out),
            [
                ("flat/é1.png".to_owned(), 8),
                ("north/2.png".to_owned(), 0),
                ("labels.csv".to_owned(), 11)
            ]
        );
        // The same content gives the same bytes (no clock in the archive), and `unzip` agrees.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.zip");
        std::fs::write(&path, &out).unwrap();
        let unzip = std::process::Command::new("unzip")
            .arg("-t")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            unzip.status.success(),
            "{}",
            String::from_utf8_lossy(&unzip.stdout)
        );
    }

    #[test]
    fn more_than_65535_entries_switch_to_zip64() {
        let mut out = Vec::new();
        let mut zip = ZipWriter::new();
        let n = 70_000u32;
        for i in 0..n {
            zip.add(&mut out, &format!("d/{i}.txt"), &i.to_le_bytes())
                .unwrap();
        }
        zip.finish(&mut out).unwrap();
        let listing = python_listing(&out);
        assert_eq!(listing.len(), n as usize);
        assert_eq!(listing[69_999], ("d/69999.txt".to_owned(), 4));
        // The classic end record says "see ZIP64" rather than a wrapped-around count.
        let eocd = &out[out.len() - 22..];
        assert_eq!(&eocd[8..10], &u16::MAX.to_le_bytes());
    }
}
