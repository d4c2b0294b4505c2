//! Server-chosen names: `amq.gen-…` queues and `amq.ctag-…` consumer tags.
//!
//! RabbitMQ appends 22 characters of URL-safe base64 of 16 random bytes. Here the bytes come from
//! a SplitMix64 generator seeded by [`BrokerConfig::seed`](crate::broker::BrokerConfig::seed), so a
//! run is reproducible and the broker reads no global random source.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A seeded generator of name suffixes.
#[derive(Clone, Debug)]
pub(crate) struct NameGen {
    state: u64,
}

impl NameGen {
    pub(crate) fn new(seed: u64) -> Self {
        NameGen { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `prefix` followed by 22 URL-safe base64 characters (16 bytes' worth, unpadded).
    pub(crate) fn name(&mut self, prefix: &str) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        let mut out = String::with_capacity(prefix.len() + 22);
        out.push_str(prefix);
        let mut acc = 0u32;
        let mut bits = 0;
        for b in bytes {
            acc = (acc << 8) | b as u32;
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
            }
        }
        if bits > 0 {
            out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_like_rabbitmq_ones_and_repeat_per_seed() {
        let mut a = NameGen::new(7);
        let mut b = NameGen::new(7);
        let n = a.name("amq.gen-");
        assert_eq!(n.len(), "amq.gen-".len() + 22);
        assert!(
            n["amq.gen-".len()..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(n, b.name("amq.gen-"));
        assert_ne!(a.name("amq.gen-"), n);
    }
}
