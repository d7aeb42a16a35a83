//! Conversations: a tenant's follow-up questions and the answers they got, so that "and from
//! when?" is read in the light of the question before it. A conversation belongs to one
//! tenant; another tenant's id is "not found".
//!
//! Queries are stored after the guardians' redaction, as they were answered.

use crate::db::args;
use crate::store::{Store, StoreError};

/// How many earlier turns a follow-up sees.
pub const HISTORY_TURNS: usize = 3;

/// A conversation as a follow-up needs it.
#[derive(Debug, Default)]
pub struct Conversation {
    pub id: String,
    pub jurisdiction: Option<String>,
    pub context: Option<String>,
    /// Earlier turns, oldest first: (question, answer).
    pub turns: Vec<(String, String)>,
}

impl Store {
    pub(crate) fn gloxi_create(
        &self,
        tenant: &str,
        id: &str,
        jurisdiction: Option<&str>,
        context: Option<&str>,
    ) -> Result<(), StoreError> {
        self.ensure_tenant(tenant)?;
        let now = crate::now();
        self.execute(
            "INSERT INTO gloxi_conversations (id, tenant_id, jurisdiction, context, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            args![id, tenant, jurisdiction, context, &now],
        )?;
        Ok(())
    }

    /// The conversation with its last turns, if it is the tenant's.
    pub(crate) fn gloxi_load(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Conversation>, StoreError> {
        let Some(head) = self.query_opt(
            "SELECT jurisdiction, context FROM gloxi_conversations WHERE id = ?1 AND tenant_id = ?2",
            args![id, tenant],
        )?
        else {
            return Ok(None);
        };
        let (jurisdiction, context): (Option<String>, Option<String>) =
            (head.get(0)?, head.get(1)?);
        let mut turns = self
            .query(
                "SELECT query, answer FROM gloxi_turns WHERE conversation_id = ?1
                 ORDER BY seq DESC LIMIT ?2",
                args![id, HISTORY_TURNS as i64],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect::<Result<Vec<(String, String)>, StoreError>>()?;
        turns.reverse();
        Ok(Some(Conversation {
            id: id.to_owned(),
            jurisdiction,
            context,
            turns,
        }))
    }

    /// Appends a turn (its citations as JSON) and touches the conversation.
    pub(crate) fn gloxi_append(
        &self,
        id: &str,
        query: &str,
        answer: &str,
        citations: &str,
        mode: &str,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        self.transaction(vec![
            (
                "INSERT INTO gloxi_turns (conversation_id, seq, query, answer, citations, mode, created_at)
                 VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM gloxi_turns WHERE conversation_id = ?1),
                         ?2, ?3, ?4, ?5, ?6)",
                args![id, query, answer, citations, mode, &now],
            ),
            (
                "UPDATE gloxi_conversations SET updated_at = ?2 WHERE id = ?1",
                args![id, &now],
            ),
        ])?;
        Ok(())
    }
}
