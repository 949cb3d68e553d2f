-- chihaya-rs: the tables the tracker reads and writes (SPEC §14).
--
-- Load into an existing, selected database, for example:
--   mariadb -u root chihaya < database/schema.sql
-- There is no CREATE DATABASE / USE here: tests load this file into their own
-- throw-away databases. Every statement is idempotent (IF NOT EXISTS) and the
-- file loads without warnings under sql_mode = STRICT_TRANS_TABLES
-- (MariaDB >= 10.3.3).
--
-- All columns are NOT NULL. The tracker writes only:
--   torrents          Snatched, Seeders, Leechers, last_action, Status
--   torrents_group*   Time (only with flush_groups)
--   users_main        Uploaded, Downloaded, rawup, rawdl
--   transfer_history  every column but hnr
--   transfer_ips      every column
-- Everything else belongs to the site.

-- Peer-id prefixes of allowed clients. Archived rows are not allowed.
CREATE TABLE IF NOT EXISTS `approved_clients` (
  `id` mediumint unsigned NOT NULL AUTO_INCREMENT,
  `peer_id` varchar(42) NOT NULL,
  `archived` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Site-wide switches. The tracker reads `global_freeleech`.
CREATE TABLE IF NOT EXISTS `mod_core` (
  `mod_option` varchar(121) NOT NULL,
  `mod_setting` int(12) NOT NULL,
  PRIMARY KEY (`mod_option`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Per-group multipliers, one row per (group, torrent type).
CREATE TABLE IF NOT EXISTS `torrent_group_freeleech` (
  `ID` int(10) NOT NULL AUTO_INCREMENT,
  `GroupID` int(10) NOT NULL,
  `Type` enum('anime','music') NOT NULL,
  `DownMultiplier` float NOT NULL DEFAULT 1,
  `UpMultiplier` float NOT NULL DEFAULT 1,
  PRIMARY KEY (`ID`),
  UNIQUE KEY `GroupID` (`GroupID`,`Type`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- info_hash holds the 20 raw bytes. The unique key covers exactly those.
CREATE TABLE IF NOT EXISTS `torrents` (
  `ID` int(10) NOT NULL AUTO_INCREMENT,
  `GroupID` int(10) NOT NULL,
  `TorrentType` enum('anime','music') NOT NULL,
  `info_hash` blob NOT NULL,
  `Leechers` int(6) NOT NULL DEFAULT 0,
  `Seeders` int(6) NOT NULL DEFAULT 0,
  `last_action` int NOT NULL DEFAULT 0,
  `Snatched` int unsigned NOT NULL DEFAULT 0,
  `DownMultiplier` float NOT NULL DEFAULT 1,
  `UpMultiplier` float NOT NULL DEFAULT 1,
  `Status` int NOT NULL DEFAULT 0,
  PRIMARY KEY (`ID`),
  UNIQUE KEY `InfoHash` (`info_hash`(20))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Torrent groups per type (anime, music). Only `Time` is touched, and only
-- when flush_groups is on.
CREATE TABLE IF NOT EXISTS `torrents_group` (
  `ID` int unsigned NOT NULL AUTO_INCREMENT,
  `Time` int(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (`ID`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS `torrents_group2` (
  `ID` int unsigned NOT NULL AUTO_INCREMENT,
  `Time` int(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (`ID`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per (user, torrent): totals, seeding state, hit-and-run flag.
CREATE TABLE IF NOT EXISTS `transfer_history` (
  `uid` int NOT NULL,
  `fid` int NOT NULL,
  `uploaded` bigint NOT NULL DEFAULT 0,
  `downloaded` bigint NOT NULL DEFAULT 0,
  `seeding` tinyint NOT NULL DEFAULT 0,
  `seedtime` int(30) NOT NULL DEFAULT 0,
  `activetime` int(30) NOT NULL DEFAULT 0,
  `hnr` tinyint NOT NULL DEFAULT 0,
  `remaining` bigint NOT NULL DEFAULT 0,
  `active` tinyint NOT NULL DEFAULT 0,
  `starttime` int NOT NULL DEFAULT 0,
  `last_announce` int NOT NULL DEFAULT 0,
  `snatched` int NOT NULL DEFAULT 0,
  `snatched_time` int NOT NULL DEFAULT 0,
  PRIMARY KEY (`uid`,`fid`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per (user, torrent, IPv4 address as an integer, approved client id).
CREATE TABLE IF NOT EXISTS `transfer_ips` (
  `last_announce` int unsigned NOT NULL DEFAULT 0,
  `starttime` int unsigned NOT NULL DEFAULT 0,
  `uid` int unsigned NOT NULL,
  `fid` int unsigned NOT NULL,
  `ip` int unsigned NOT NULL,
  `client_id` mediumint unsigned NOT NULL,
  `uploaded` bigint unsigned NOT NULL DEFAULT 0,
  `downloaded` bigint unsigned NOT NULL DEFAULT 0,
  `port` smallint unsigned zerofill NOT NULL DEFAULT 0,
  PRIMARY KEY (`uid`,`fid`,`ip`,`client_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Optional: the same per-IP rows for IPv6 endpoints, the address as its 16 bytes.
-- Without this table the tracker skips IPv6 per-IP rows (with a warning at start)
-- and changes nothing else.
CREATE TABLE IF NOT EXISTS `transfer_ips6` (
  `last_announce` int unsigned NOT NULL DEFAULT 0,
  `starttime` int unsigned NOT NULL DEFAULT 0,
  `uid` int unsigned NOT NULL,
  `fid` int unsigned NOT NULL,
  `ip` binary(16) NOT NULL,
  `client_id` mediumint unsigned NOT NULL,
  `uploaded` bigint unsigned NOT NULL DEFAULT 0,
  `downloaded` bigint unsigned NOT NULL DEFAULT 0,
  `port` smallint unsigned zerofill NOT NULL DEFAULT 0,
  PRIMARY KEY (`uid`,`fid`,`ip`,`client_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Users. Only rows with Enabled = 1 are loaded. torrent_pass is the passkey.
CREATE TABLE IF NOT EXISTS `users_main` (
  `ID` int unsigned NOT NULL AUTO_INCREMENT,
  `Uploaded` bigint unsigned NOT NULL DEFAULT 0,
  `Downloaded` bigint unsigned NOT NULL DEFAULT 0,
  `Enabled` enum('0','1','2') NOT NULL DEFAULT '0',
  `torrent_pass` char(32) NOT NULL,
  `rawup` bigint unsigned NOT NULL DEFAULT 0,
  `rawdl` bigint unsigned NOT NULL DEFAULT 0,
  `DownMultiplier` float NOT NULL DEFAULT 1,
  `UpMultiplier` float NOT NULL DEFAULT 1,
  `DisableDownload` tinyint(1) NOT NULL DEFAULT 0,
  `TrackerHide` tinyint(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (`ID`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Optional, the tracker's own: per accounting writer, the number of the last flush it
-- committed, written in the same transaction as the flush's rows. With it, a flush
-- whose commit reply was lost is never written twice, and the journal replayed at
-- start skips exactly what the database already has. Without it the tracker runs as
-- before (at-least-once across lost connections, no journal) and says so at start.
CREATE TABLE IF NOT EXISTS `chihaya_commits` (
  `writer` varchar(32) NOT NULL,
  `epoch` bigint unsigned NOT NULL,
  PRIMARY KEY (`writer`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
