//! Every reason an announce or scrape is refused, with the exact SPEC text and the
//! `interval` the client is told to wait. The HTTP layer bencodes them.

use super::types::PeerId;

/// A refused request. All of them are answered with HTTP 200 and a bencoded
/// `failure reason`, so clients back off instead of hammering.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Failure {
    InvalidPasskey,
    QueryTooLong,
    InvalidQuery,
    MissingInfoHash,
    MultipleInfoHashes,
    TooManyInfoHashes,
    MissingPeerId,
    InvalidPeerId,
    MissingPort,
    PortOutOfRange(u16),
    MissingUploaded,
    MissingDownloaded,
    MissingLeft,
    /// No usable address; carries the candidate text (may be empty).
    BadAddress(Vec<u8>),
    ClientNotApproved(PeerId),
    UnknownTorrent,
    TorrentStatus {
        status: i32,
        left: u64,
    },
    DownloadDisabled,
    /// The user's request budget is used up ([`super::RequestLimiter`]); come back
    /// after this many seconds.
    RateLimited {
        retry_secs: u32,
    },
}

/// The least a rate-limited client is told to wait: a budget refills in a fraction
/// of a second, but a client that used a whole burst has no business back sooner.
pub const RATE_LIMIT_RETRY_SECS: u32 = 60;

/// The `reason` label of `chihaya_refusals_total`: one short, stable name per variant,
/// in declaration order ([`Failure::reason_index`] is a position in it). Dashboards and
/// alerts key on these, so a name never changes once released.
pub const REFUSAL_REASONS: [&str; 19] = [
    "passkey_invalid",
    "query_too_long",
    "query_invalid",
    "info_hash_missing",
    "info_hash_multiple",
    "info_hash_too_many",
    "peer_id_missing",
    "peer_id_invalid",
    "port_missing",
    "port_out_of_range",
    "uploaded_missing",
    "downloaded_missing",
    "left_missing",
    "address_invalid",
    "client_not_approved",
    "unregistered_torrent",
    "torrent_status",
    "download_disabled",
    "rate_limited",
];

impl Failure {
    /// A rate limit refusal for a budget that is back in `micros` microseconds.
    pub fn rate_limited(micros: u64) -> Failure {
        let secs = u32::try_from(micros.div_ceil(1_000_000)).unwrap_or(u32::MAX);
        Failure::RateLimited {
            retry_secs: secs.max(RATE_LIMIT_RETRY_SECS),
        }
    }

    /// Position of this variant's label in [`REFUSAL_REASONS`], so the HTTP layer can
    /// bump a counter resolved once at start-up.
    pub fn reason_index(&self) -> usize {
        match self {
            Failure::InvalidPasskey => 0,
            Failure::QueryTooLong => 1,
            Failure::InvalidQuery => 2,
            Failure::MissingInfoHash => 3,
            Failure::MultipleInfoHashes => 4,
            Failure::TooManyInfoHashes => 5,
            Failure::MissingPeerId => 6,
            Failure::InvalidPeerId => 7,
            Failure::MissingPort => 8,
            Failure::PortOutOfRange(_) => 9,
            Failure::MissingUploaded => 10,
            Failure::MissingDownloaded => 11,
            Failure::MissingLeft => 12,
            Failure::BadAddress(_) => 13,
            Failure::ClientNotApproved(_) => 14,
            Failure::UnknownTorrent => 15,
            Failure::TorrentStatus { .. } => 16,
            Failure::DownloadDisabled => 17,
            Failure::RateLimited { .. } => 18,
        }
    }

    /// BEP 31 `retry in`, whole minutes, for the failures that carry it.
    pub fn retry_in_minutes(&self) -> Option<u32> {
        match self {
            Failure::RateLimited { retry_secs } => Some(retry_secs.div_ceil(60)),
            _ => None,
        }
    }

    /// Seconds for both `interval` and `min interval`.
    pub fn interval(&self) -> u32 {
        match self {
            Failure::UnknownTorrent => 30,
            Failure::TorrentStatus { .. } => 300,
            Failure::RateLimited { retry_secs } => *retry_secs,
            _ => 3600,
        }
    }

    /// Appends the exact `failure reason` bytes (a peer_id or header may not be UTF-8).
    pub fn write_reason(&self, out: &mut Vec<u8>) {
        let fixed: &str = match self {
            Failure::InvalidPasskey => "Your passkey is invalid",
            Failure::QueryTooLong => "Malformed request - query string too long",
            Failure::InvalidQuery => "Malformed request - invalid query string",
            Failure::MissingInfoHash => "Malformed request - missing info_hash",
            Failure::MultipleInfoHashes => "Malformed request - multiple info_hash values provided",
            Failure::TooManyInfoHashes => "Malformed request - too many info_hash values provided",
            Failure::MissingPeerId => "Malformed request - missing peer_id",
            Failure::InvalidPeerId => "Malformed request - invalid peer_id",
            Failure::MissingPort => "Malformed request - missing port",
            Failure::MissingUploaded => "Malformed request - missing uploaded",
            Failure::MissingDownloaded => "Malformed request - missing downloaded",
            Failure::MissingLeft => "Malformed request - missing left",
            Failure::UnknownTorrent => "This torrent does not exist",
            Failure::DownloadDisabled => "Your download privileges are disabled",
            Failure::RateLimited { .. } => "Too many requests - slow down",
            Failure::PortOutOfRange(port) => {
                let text =
                    format!("Malformed request - port outside of acceptable range (port: {port})");
                out.extend_from_slice(text.as_bytes());
                return;
            }
            Failure::BadAddress(candidate) => {
                out.extend_from_slice(b"Failed to parse IP address (ip: ");
                out.extend_from_slice(candidate);
                out.push(b')');
                return;
            }
            Failure::ClientNotApproved(peer_id) => {
                out.extend_from_slice(b"Your client is not approved (peer_id: ");
                out.extend_from_slice(&peer_id.0);
                out.push(b')');
                return;
            }
            Failure::TorrentStatus { status, left } => {
                let text = format!("This torrent does not exist (status: {status}, left: {left})");
                out.extend_from_slice(text.as_bytes());
                return;
            }
        };
        out.extend_from_slice(fixed.as_bytes());
    }

    pub fn reason(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_reason(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_intervals() {
        let cases: &[(Failure, &[u8], u32)] = &[
            (Failure::InvalidPasskey, b"Your passkey is invalid", 3600),
            (Failure::UnknownTorrent, b"This torrent does not exist", 30),
            (
                Failure::TorrentStatus { status: 1, left: 5 },
                b"This torrent does not exist (status: 1, left: 5)",
                300,
            ),
            (
                Failure::PortOutOfRange(80),
                b"Malformed request - port outside of acceptable range (port: 80)",
                3600,
            ),
            (
                Failure::BadAddress(Vec::new()),
                b"Failed to parse IP address (ip: )",
                3600,
            ),
            (
                Failure::ClientNotApproved(PeerId(*b"-XX0001-\xff234567890ab")),
                b"Your client is not approved (peer_id: -XX0001-\xff234567890ab)",
                3600,
            ),
        ];
        for (failure, reason, interval) in cases {
            assert_eq!(failure.reason(), reason.to_vec(), "{failure:?}");
            assert_eq!(failure.interval(), *interval, "{failure:?}");
        }
    }

    #[test]
    fn every_variant_has_its_own_refusal_label() {
        let peer_id = PeerId(*b"-XX0001-1234567890ab");
        let labelled = [
            (Failure::InvalidPasskey, "passkey_invalid"),
            (Failure::QueryTooLong, "query_too_long"),
            (Failure::InvalidQuery, "query_invalid"),
            (Failure::MissingInfoHash, "info_hash_missing"),
            (Failure::MultipleInfoHashes, "info_hash_multiple"),
            (Failure::TooManyInfoHashes, "info_hash_too_many"),
            (Failure::MissingPeerId, "peer_id_missing"),
            (Failure::InvalidPeerId, "peer_id_invalid"),
            (Failure::MissingPort, "port_missing"),
            (Failure::PortOutOfRange(1), "port_out_of_range"),
            (Failure::MissingUploaded, "uploaded_missing"),
            (Failure::MissingDownloaded, "downloaded_missing"),
            (Failure::MissingLeft, "left_missing"),
            (Failure::BadAddress(b"x".to_vec()), "address_invalid"),
            (Failure::ClientNotApproved(peer_id), "client_not_approved"),
            (Failure::UnknownTorrent, "unregistered_torrent"),
            (
                Failure::TorrentStatus { status: 1, left: 0 },
                "torrent_status",
            ),
            (Failure::DownloadDisabled, "download_disabled"),
            (Failure::rate_limited(5), "rate_limited"),
        ];
        assert_eq!(labelled.len(), REFUSAL_REASONS.len());
        let mut seen = std::collections::HashSet::new();
        for (failure, label) in &labelled {
            let index = failure.reason_index();
            assert_eq!(REFUSAL_REASONS[index], *label, "{failure:?}");
            assert!(seen.insert(index), "{failure:?} shares index {index}");
            // Prometheus label values are free text, but these are also query terms.
            assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
