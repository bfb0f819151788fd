//! Reading the audit log (the writer is `platform/audit.rs`).

use sqlx::{AnyPool, Row};

/// Which entries to read.
pub struct Filter {
    pub from: i64,
    pub to: i64,
    pub actor_id: Option<String>,
    pub object_id: Option<String>,
    pub action: Option<String>,
    /// Only actions starting with this (`recording.`: every recording action).
    pub action_prefix: Option<String>,
}

pub struct Entry {
    pub id: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub object_type: String,
    pub object_id: Option<String>,
    pub ip: Option<String>,
    pub details: Option<String>,
}

/// One page, newest first, and the total.
pub async fn page(
    pool: &AnyPool,
    f: Filter,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<Entry>), sqlx::Error> {
    let filter = " WHERE at >= $1 AND at < $2 AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR object_id = $4) \
                  AND ($5 IS NULL OR action = $5) AND ($6 IS NULL OR action LIKE $6 ESCAPE '\\')";
    // The prefix as a LIKE pattern, its own `%`, `_` and `\` taken literally.
    let like = f.action_prefix.map(|p| {
        let mut out = String::with_capacity(p.len() + 1);
        for ch in p.chars() {
            if matches!(ch, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(ch);
        }
        out.push('%');
        out
    });
    let (total,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM audit_log{filter}"
    )))
    .bind(f.from)
    .bind(f.to)
    .bind(f.actor_id.clone())
    .bind(f.object_id.clone())
    .bind(f.action.clone())
    .bind(like.clone())
    .fetch_one(pool)
    .await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, at, actor_kind, actor_id, actor_role, action, object_type, object_id, ip, details \
         FROM audit_log{filter} ORDER BY id DESC LIMIT $7 OFFSET $8"
    )))
    .bind(f.from)
    .bind(f.to)
    .bind(f.actor_id)
    .bind(f.object_id)
    .bind(f.action)
    .bind(like)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let entries = rows
        .into_iter()
        .map(|row| {
            Ok(Entry {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor_kind: row.try_get("actor_kind")?,
                actor_id: row.try_get("actor_id")?,
                actor_role: row.try_get("actor_role")?,
                action: row.try_get("action")?,
                object_type: row.try_get("object_type")?,
                object_id: row.try_get("object_id")?,
                ip: row.try_get("ip")?,
                details: row.try_get("details")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((total, entries))
}
