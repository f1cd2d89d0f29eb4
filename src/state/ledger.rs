//! The request ledger: requests per UTC day, counted before each request
//! is sent, with the organization's count from the last `getAPIKey`.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{StateError, Store};

/// One day's line of the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerDay {
    /// UTC date, `YYYY-MM-DD`.
    pub day: String,
    /// Requests this forwarder counted.
    pub used: i64,
    /// The organization's count (every tool) at the last sync.
    pub org_used: Option<i64>,
    /// This forwarder's count at the last sync.
    pub used_at_sync: i64,
    /// `request_limit` from the last sync.
    pub server_limit: Option<i64>,
    pub synced_ms: Option<i64>,
    /// Set after the server replied that the limit is reached.
    pub closed_until_ms: Option<i64>,
    pub last_request_ms: Option<i64>,
}

impl LedgerDay {
    /// Returns the organization's requests today as best known: the server's
    /// count at the last sync plus this forwarder's requests since, or
    /// this forwarder's own count when that is larger.
    pub fn effective_used(&self) -> i64 {
        let since_sync = self.used - self.used_at_sync;
        let synced = self.org_used.map_or(0, |org| org + since_sync);
        self.used.max(synced)
    }
}

const COLUMNS: &str = "used, org_used, used_at_sync, server_limit, synced_ms, \
                       closed_until_ms, last_request_ms";

fn read_day(day: &str, row: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerDay> {
    Ok(LedgerDay {
        day: day.to_owned(),
        used: row.get(0)?,
        org_used: row.get(1)?,
        used_at_sync: row.get(2)?,
        server_limit: row.get(3)?,
        synced_ms: row.get(4)?,
        closed_until_ms: row.get(5)?,
        last_request_ms: row.get(6)?,
    })
}

impl Store {
    pub fn ledger_day(&self, day: &str) -> Result<LedgerDay, StateError> {
        let sql = format!("SELECT {COLUMNS} FROM ledger WHERE day = ?1");
        let row = self
            .conn()
            .query_row(&sql, [day], |row| read_day(day, row))
            .optional()?;
        Ok(row.unwrap_or_else(|| LedgerDay {
            day: day.to_owned(),
            ..LedgerDay::default()
        }))
    }

    /// Counts one request for `day` if the day's effective count is
    /// below `allowed`, in one write transaction, so two callers cannot
    /// both take the last one. Returns the day after the count, or
    /// `None` when the day is spent.
    pub fn ledger_take(
        &self,
        day: &str,
        allowed: i64,
        now_ms: i64,
    ) -> Result<Option<LedgerDay>, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("INSERT OR IGNORE INTO ledger (day) VALUES (?1)", [day])?;
        let sql = format!("SELECT {COLUMNS} FROM ledger WHERE day = ?1");
        let mut line = tx.query_row(&sql, [day], |row| read_day(day, row))?;
        if line.effective_used() >= allowed {
            return Ok(None);
        }
        tx.execute(
            "UPDATE ledger SET used = used + 1, last_request_ms = ?2 WHERE day = ?1",
            params![day, now_ms],
        )?;
        tx.commit()?;
        line.used += 1;
        line.last_request_ms = Some(now_ms);
        Ok(Some(line))
    }

    /// Records the organization's count and limit from `getAPIKey`.
    pub fn ledger_sync(
        &self,
        day: &str,
        org_used: i64,
        server_limit: Option<i64>,
        now_ms: i64,
    ) -> Result<(), StateError> {
        let conn = self.conn();
        conn.execute("INSERT OR IGNORE INTO ledger (day) VALUES (?1)", [day])?;
        conn.execute(
            "UPDATE ledger SET org_used = ?2, used_at_sync = used,
             server_limit = COALESCE(?3, server_limit), synced_ms = ?4
             WHERE day = ?1",
            params![day, org_used, server_limit, now_ms],
        )?;
        Ok(())
    }

    /// Closes `day` until `until_ms`, after the server replied that the
    /// limit was reached.
    pub fn ledger_close(&self, day: &str, until_ms: i64) -> Result<(), StateError> {
        let conn = self.conn();
        conn.execute("INSERT OR IGNORE INTO ledger (day) VALUES (?1)", [day])?;
        conn.execute(
            "UPDATE ledger SET closed_until_ms = ?2 WHERE day = ?1",
            params![day, until_ms],
        )?;
        Ok(())
    }

    /// When `source` last listed, in epoch milliseconds.
    pub fn listed_ms(&self, source: &str) -> Result<Option<i64>, StateError> {
        let value = self
            .conn()
            .query_row(
                "SELECT listed_ms FROM cursor WHERE source = ?1",
                [source],
                |row| row.get(0),
            )
            .optional()?;
        Ok(value.flatten())
    }
}
