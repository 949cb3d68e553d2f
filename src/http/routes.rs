//! Routing (SPEC §3.3) and the announce and scrape handlers.

use std::borrow::Cow;
use std::time::Instant;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};

use super::query::{announce_request, decode_path_segment, Query};
use super::response::{self, PeerFormat};
use super::{metrics, HttpState};
use crate::metrics::Metrics;
use crate::record;
use crate::tracker::{self, ip, Failure, SelectedPeer, User, View, MAX_SCRAPE_HASHES};

/// Where a path leads.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Check,
    Alive,
    AdminMetrics,
    Announce(Cow<'a, [u8]>),
    Scrape(Cow<'a, [u8]>),
    UserMetrics(Cow<'a, [u8]>),
    NotFound,
}

fn decode(segment: &str) -> Option<Cow<'_, [u8]>> {
    decode_path_segment(segment.as_bytes()).filter(|d| !d.is_empty())
}

/// Splits the path on `/` and decodes each segment; empty or extra segments and bad
/// escapes lead nowhere.
fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix('/') else {
        return Route::NotFound;
    };
    let mut segments = rest.split('/');
    let (first, second) = (segments.next(), segments.next());
    if segments.next().is_some() {
        return Route::NotFound;
    }
    match (first.and_then(decode), second) {
        (Some(name), None) => match &*name {
            b"check" => Route::Check,
            b"alive" => Route::Alive,
            b"metrics" => Route::AdminMetrics,
            _ => Route::NotFound,
        },
        (Some(passkey), Some(action)) => match decode(action).as_deref() {
            Some(b"announce") => Route::Announce(passkey),
            Some(b"scrape") => Route::Scrape(passkey),
            Some(b"metrics") => Route::UserMetrics(passkey),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

pub fn respond(request: &HttpRequest, state: &HttpState) -> HttpResponse {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        return HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET, HEAD"))
            .finish();
    }
    let response = match route(request.uri().path()) {
        Route::Check => text(state.shared.clock.now().to_string().into_bytes()),
        Route::Alive => {
            let uptime = state.shared.started.elapsed().as_millis();
            HttpResponse::Ok()
                .content_type("application/json")
                .body(format!(
                    "{{\"now\":{},\"uptime\":{}}}",
                    state.shared.clock.now_ms(),
                    uptime
                ))
        }
        Route::AdminMetrics => match metrics::is_admin(request, &state.shared.config.admin_token) {
            true => metrics::respond(&state.shared, true),
            false => not_found(),
        },
        Route::Announce(passkey) => with_user(state, &passkey, Refusal::Bencoded, |user| {
            let started = Instant::now();
            let response = announce(request, state, user);
            state
                .shared
                .metrics
                .announce_duration
                .observe(started.elapsed().as_secs_f64());
            response
        }),
        Route::Scrape(passkey) => with_user(state, &passkey, Refusal::Bencoded, |user| {
            if state.shared.config.scrape {
                scrape(request, state, user)
            } else {
                not_found()
            }
        }),
        Route::UserMetrics(passkey) => with_user(state, &passkey, Refusal::Status, |_| {
            metrics::respond(
                &state.shared,
                metrics::is_admin(request, &state.shared.config.admin_token),
            )
        }),
        Route::NotFound => not_found(),
    };
    if matches!(response.status(), StatusCode::OK | StatusCode::NOT_FOUND) {
        state.shared.metrics.requests.inc();
    }
    response
}

/// How a passkey route tells a user their request budget is used up.
#[derive(Clone, Copy)]
enum Refusal {
    /// A bencoded failure with `retry in` (BitTorrent clients).
    Bencoded,
    /// `429 Too Many Requests` with `Retry-After` (`/{passkey}/metrics`).
    Status,
}

/// Looks the passkey up among enabled users before anything else, then takes the
/// request from the user's budget.
fn with_user(
    state: &HttpState,
    passkey: &[u8],
    refusal: Refusal,
    then: impl FnOnce(&User) -> HttpResponse,
) -> HttpResponse {
    let shared = &state.shared;
    let users = shared.snapshots.users.load();
    let Some(user) = users.get(passkey) else {
        return failure(&shared.metrics, &Failure::InvalidPasskey);
    };
    if let Err(wait) = shared.limiter.admit(user.id, shared.micros()) {
        shared.metrics.rate_limited.inc();
        let refused = Failure::rate_limited(wait.micros);
        return match refusal {
            Refusal::Bencoded => failure(&shared.metrics, &refused),
            Refusal::Status => HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, refused.interval().to_string()))
                .content_type("text/plain")
                .finish(),
        };
    }
    then(&user)
}

fn text(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body(body)
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().content_type("text/plain").finish()
}

/// Every refusal of an announce or scrape is answered here, and counted by reason.
fn failure(metrics: &Metrics, failure: &Failure) -> HttpResponse {
    metrics.refused(failure);
    let mut body = Vec::with_capacity(128);
    response::failure(&mut body, failure);
    text(body)
}

fn raw_query(request: &HttpRequest) -> &[u8] {
    request.uri().query().unwrap_or("").as_bytes()
}

fn announce(request: &HttpRequest, state: &HttpState, user: &User) -> HttpResponse {
    match try_announce(request, state, user) {
        Ok(body) => text(body),
        Err(refused) => failure(&state.shared.metrics, &refused),
    }
}

fn try_announce(request: &HttpRequest, state: &HttpState, user: &User) -> Result<Vec<u8>, Failure> {
    let shared = &state.shared;
    let query = Query::parse(raw_query(request))?;
    let (announce_request, event_raw) =
        announce_request(&query, shared.config.strict_port, || {
            let source = ip::Source {
                proxy_header: state
                    .proxy_header
                    .as_ref()
                    .and_then(|name| request.headers().get(name))
                    .map(|value| value.as_bytes()),
                tcp_peer: request.peer_addr().map(|addr| addr.ip()),
            };
            ip::resolve(query.ipv4.as_deref(), query.ip.as_deref(), &source)
        })?;
    let snapshots = &shared.snapshots;
    let (clients, hit_and_runs, group_freeleech) = (
        snapshots.clients.load(),
        snapshots.hit_and_runs.load(),
        snapshots.group_freeleech.load(),
    );
    let view = View {
        clients: &clients,
        hit_and_runs: &hit_and_runs,
        group_freeleech: &group_freeleech,
        global_freeleech: snapshots.global_freeleech(),
        catalogue: &snapshots.catalogue,
        swarms: &snapshots.swarms,
        peers: &snapshots.peers,
    };
    let now = shared.clock.now();
    if !shared.config.instance.is_empty() {
        crate::server::absence::check(shared, now);
    }
    PEERS.with(|peers| {
        // A panic while borrowed unwinds through the RefMut, which releases it.
        let mut peers = peers.borrow_mut();
        peers.clear();
        // The deltas are queued (and journaled) while the torrent is still locked, so
        // the journal holds each peer's announces in the order they happened.
        let done = tracker::announce_with(
            &shared.settings,
            &view,
            user,
            &announce_request,
            now,
            &mut rand::rng(),
            &mut peers,
            |change, deltas| shared.sink.record(change, deltas),
        )?;
        Ok(finish_announce(
            state,
            user,
            &announce_request,
            event_raw,
            now,
            &done,
            &peers,
        ))
    })
}

thread_local! {
    /// The selected peers of the announce this worker thread is answering, reused.
    static PEERS: std::cell::RefCell<Vec<SelectedPeer>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What follows a successful announce (its deltas are queued already): record it,
/// write the body.
fn finish_announce(
    state: &HttpState,
    user: &User,
    announce_request: &tracker::AnnounceRequest,
    event_raw: &[u8],
    now: i64,
    done: &tracker::Announced,
    peers: &[SelectedPeer],
) -> Vec<u8> {
    let shared = &state.shared;
    if let Some(id) = done.deltas.unprune {
        tracing::info!("Unpruning torrent {}", id.0);
    }
    if done.evicted > 0 {
        shared.metrics.peers_evicted.inc_by(u64::from(done.evicted));
    }
    if done.implausible.any() {
        not_credited(shared, user, done);
    }
    if let Some(recorder) = shared.recorder.get() {
        recorder.record(record::Event {
            at: now,
            torrent: done.deltas.torrent.id.0,
            user: user.id.0,
            ip: announce_request.ip,
            port: announce_request.port,
            event: event_raw.to_vec(),
            seeding: done.seeding,
            delta_up: done.reported_up,
            delta_down: done.reported_down,
            uploaded: announce_request.uploaded,
            downloaded: announce_request.downloaded,
            left: announce_request.left,
            flags: (u8::from(done.implausible.up) * record::NOT_CREDITED_UP)
                | (u8::from(done.implausible.down) * record::NOT_CREDITED_DOWN),
        });
    }
    let format = if announce_request.compact {
        PeerFormat::Compact
    } else {
        PeerFormat::Dicts {
            with_peer_id: !announce_request.no_peer_id,
        }
    };
    let mut body = Vec::with_capacity(128 + peers.len() * 6);
    response::announce(&mut body, done, peers, format);
    body
}

/// Counts a reported transfer that was not credited, and says so in the log at most
/// once a minute (a client sending absurd counters must not flood it).
fn not_credited(shared: &crate::server::state::Shared, user: &User, done: &tracker::Announced) {
    let counter = &shared.metrics.implausible_deltas;
    for (flagged, direction) in [(done.implausible.up, "up"), (done.implausible.down, "down")] {
        if flagged {
            counter.with_label_values(&[direction]).inc();
        }
    }
    if let Some(count) = shared.implausible_log.hit(Instant::now()) {
        tracing::warn!(
            "Not credited: user {} reported {} bytes up and {} down on torrent {}, more than limits.max_transfer_rate allows ({} such announces since the last report)",
            user.id.0,
            done.reported_up,
            done.reported_down,
            done.deltas.torrent.id.0,
            count
        );
    }
}

fn scrape(request: &HttpRequest, state: &HttpState, user: &User) -> HttpResponse {
    let shared = &state.shared;
    let query = match Query::parse(raw_query(request)) {
        Ok(query) => query,
        Err(refused) => return failure(&shared.metrics, &refused),
    };
    if query.info_hashes.len() > MAX_SCRAPE_HASHES {
        return failure(&shared.metrics, &Failure::TooManyInfoHashes);
    }
    let mut files = Vec::new();
    let (catalogue, hit_and_runs) = (
        shared.snapshots.catalogue.load(),
        shared.snapshots.hit_and_runs.load(),
    );
    tracker::scrape(
        &catalogue,
        &shared.snapshots.swarms,
        &hit_and_runs,
        user,
        &query.info_hashes,
        if shared.config.instance.is_empty() {
            tracker::Elsewhere::Nowhere
        } else {
            tracker::Elsewhere::Stored
        },
        &mut files,
    );
    let mut body = Vec::with_capacity(160 + files.len() * 80);
    response::scrape(
        &mut body,
        &files,
        query.info_hashes.is_empty(),
        shared.settings.scrape_interval,
    );
    text(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(s: &str) -> Cow<'_, [u8]> {
        Cow::Owned(s.as_bytes().to_vec())
    }

    #[test]
    fn routes() {
        assert_eq!(route("/check"), Route::Check);
        assert_eq!(route("/alive"), Route::Alive);
        assert_eq!(route("/metrics"), Route::AdminMetrics);
        assert_eq!(route("/abc/announce"), Route::Announce(pk("abc")));
        assert_eq!(route("/abc/scrape"), Route::Scrape(pk("abc")));
        assert_eq!(route("/abc/metrics"), Route::UserMetrics(pk("abc")));
        assert_eq!(route("/a%2Fb/announce"), Route::Announce(pk("a/b")));
        assert_eq!(route("/abc/%61nnounce"), Route::Announce(pk("abc")));
        assert_eq!(route("/a+b/announce"), Route::Announce(pk("a+b")));
        for nowhere in [
            "/",
            "",
            "/check/",
            "/abc/announce/",
            "//announce",
            "/a/b/announce",
            "/abc/other",
            "/abc",
            "/%zz/announce",
            "/abc/announc%",
            "/announce",
            "/scrape",
        ] {
            assert_eq!(route(nowhere), Route::NotFound, "{nowhere}");
        }
    }
}
