//! `cc stats`: the counts of a peer cache, as one JSON line.

use crate::cache::format::CacheFile;

/// `cc stats`: one JSON line of counts.
/// One JSON line of counts; `version` is the format the file was read in.
pub fn stats(file: &CacheFile, version: u32) -> String {
    let (mut peers, mut seeders, mut ipv4, mut ipv6) = (0usize, 0usize, 0usize, 0usize);
    for peer in file.torrents.iter().flat_map(|t| &t.peers) {
        peers += 1;
        seeders += usize::from(peer.seeding);
        ipv4 += usize::from(peer.v4.is_some());
        ipv6 += usize::from(peer.v6.is_some());
    }
    format!(
        "{{\"version\":{version},\"written_at\":{},\"users\":{},\"torrents\":{},\"peers\":{peers},\"seeders\":{seeders},\"leechers\":{},\"ipv4_endpoints\":{ipv4},\"ipv6_endpoints\":{ipv6}}}\n",
        file.written_at,
        file.users.len(),
        file.torrents.len(),
        peers - seeders
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::dump::tests::sample;

    #[test]
    fn stats_line() {
        assert_eq!(
            stats(&sample(), 2),
            "{\"version\":2,\"written_at\":1700000000,\"users\":2,\"torrents\":1,\"peers\":3,\"seeders\":1,\"leechers\":2,\"ipv4_endpoints\":2,\"ipv6_endpoints\":2}\n"
        );
    }
}
