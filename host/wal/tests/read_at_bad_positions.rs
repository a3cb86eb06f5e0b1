//! `read_at` of a position that cannot hold a record is an error (`NoRecord`), never a
//! panic or an I/O error, even for offsets near `u64::MAX` in an older segment.

use tally_wal::{Position, Record, Wal, WalConfig, WalError};

#[tokio::test]
async fn read_at_huge_offset_in_an_older_segment_is_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig {
        max_segment_size: 64 * 1024,
        max_record_size: 8 * 1024,
        max_batch_size: 16 * 1024,
        ..WalConfig::new(dir.path())
    };
    let (wal, _) = Wal::open(config).await.unwrap();
    while wal.durable_end().segment_id == 0 {
        wal.append(&Record::new(vec![1u8; 4000])).await.unwrap();
    }
    for offset in [u64::MAX, u64::MAX - 4, i64::MAX as u64 + 1] {
        let position = Position {
            segment_id: 0,
            offset,
        };
        let result = wal.read_at(position).await;
        assert!(
            matches!(result, Err(WalError::NoRecord(_))),
            "read_at({position}) gave {result:?}"
        );
    }
    wal.close().await.unwrap();
}
