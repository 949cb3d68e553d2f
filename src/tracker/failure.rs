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

impl Failure {
    /// A rate limit refusal for a budget that is back in `micros` microseconds.
    pub fn rate_limited(micros: u64) -> Failure {
        let secs = u32::try_from(micros.div_ceil(1_000_000)).unwrap_or(u32::MAX);
        Failure::RateLimited {
            retry_secs: secs.max(RATE_LIMIT_RETRY_SECS),
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
}
