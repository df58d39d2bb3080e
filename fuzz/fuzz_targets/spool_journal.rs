//! The accounting spool's journal decoder: whatever bytes a crash, a full disk or a stranger
//! leaves in `accounting.spool`, reading it back never panics; the scan accounts for every
//! byte (whole records, then a tail that is cut off); every whole record's payload decodes to
//! an update or is refused; and a framed payload reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poortwachter::server::spool::{frame, next_frame, read_header, scan, Entry, Next};

fuzz_target!(|data: &[u8]| {
    let _ = read_header(data);
    let mark = data.first().map(|b| u64::from(*b));
    let mut r = std::io::Cursor::new(data);
    if let Ok(s) = scan(&mut r, 0, mark) {
        assert_eq!(s.end + s.tail, data.len() as u64, "{s:?}");
        assert!(s.records_after_mark <= s.records);
    }
    let mut at = 0;
    while let Next::Record { payload, len } = next_frame(&data[at..]) {
        assert!(len > payload.len());
        if let Ok(entry) = Entry::decode(payload) {
            // what decodes encodes again
            let _ = entry.encode();
        }
        at += len;
    }
    if let Ok(f) = frame(data) {
        assert_eq!(
            next_frame(&f),
            Next::Record {
                payload: data,
                len: f.len()
            }
        );
    }
});
