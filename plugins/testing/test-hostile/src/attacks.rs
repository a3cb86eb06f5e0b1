//! The attacks that never return, shared by the hostile test plugins: this crate's
//! commands and `test-hostile-projection`'s events (which includes this file by its
//! path).

/// Loops forever without observable effects the optimiser could remove.
pub fn spin() -> ! {
    let mut counter = 0_u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Holds on to ever more memory; never returns (allocation failure aborts).
pub fn memory_bomb() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(std::hint::black_box(vec![1_u8; 1 << 20]));
        std::hint::black_box(&hoard);
    }
}
