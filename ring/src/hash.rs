/// XXH64 with seed 0: the hash Skipper uses for ring positions and keys.
#[inline]
pub fn xxh64(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

/// The ring coordinate of a hash key.
#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    xxh64(key)
}
