//! Gloxi: regulatory answers with citations, from a corpus shipped in the binary.
//!
//! A question goes through: validation (length, known jurisdiction and sector) -> the
//! guardians on the question (a block refuses it, a redaction is what gets answered and
//! stored) -> the conversation (a follow-up inherits its jurisdiction, sector and previous
//! question) -> retrieval ([`index`]) -> an answer:
//! - without an LLM, an extractive summary of the best passages ([`answer::extractive`]);
//! - with one ([`Generate`]), retrieval-augmented generation. The answer must cite only the
//!   passages it was given ([`answer::validate`]); a refused answer is regenerated once, then
//!   Gloxi falls back to the extractive answer and says why (`fallback`).
//!
//! -> the guardians on the answer -> the turn stored in the conversation.
//!
//! The work is split in two ([`Gloxi::prepare`] and [`Gloxi::answer`]) so that a streaming
//! adapter can refuse a bad question with a plain error status, and send its first event as soon
//! as retrieval is done, before any generation starts.

pub mod answer;
mod conversations;
pub mod corpus;
pub mod index;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use warden_guardians::{Action, Channel, GuardianConfig, Guardians};

use crate::keys::Principal;
use crate::scope::Scope;
use crate::store::{Store, StoreError};
pub use conversations::Conversation;
pub use corpus::{Passage, JURISDICTIONS, SECTORS};
pub use index::{Index, Query};

/// Longest question accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 4000;
/// Passages retrieved per question.
pub const PASSAGES: usize = 5;

/// `POST /v1/chat` (and the MCP tool `ask_gloxi`).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// The question, 1 to 4000 characters.
    pub query: String,
    /// The sector the question is asked for, e.g. `financial_services`: passages tagged with it
    /// rank higher. One of `general`, `financial_services`, `insurance`, `healthcare`,
    /// `employment`, `education`, `public_sector`, `law_enforcement`,
    /// `critical_infrastructure`, `technology`.
    #[serde(default)]
    pub context: Option<String>,
    /// Only passages of this jurisdiction (and international standards): `eu`, `us` or
    /// `international`.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Continue a conversation: its jurisdiction and context apply unless given again, and
    /// its previous question informs retrieval.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// REST only: answer as server-sent events (as does `Accept: text/event-stream`). Over MCP
    /// the answer streams as progress notifications when the client sends a progress token.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// One source an answer relies on; `[n]` in the answer is the n-th citation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Citation {
    /// The passage id, e.g. `eu-ai-act/annex-iii/5b`.
    pub id: String,
    pub regulation: String,
    /// `Art. 6`, `Annex III`, `45 CFR 164.308`, `GOVERN 1`...
    pub article: String,
    /// `2`, `5(b)`, `(a)(1)`; empty when the whole article is cited.
    pub paragraph: String,
    /// The official text (EUR-Lex, eCFR, NIST, ISO, NAIC, AICPA).
    pub link: String,
    /// The words of the passage the answer relies on.
    pub quote: String,
}

/// The answer to one question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatAnswer {
    /// The answer, citing its sources as `[1]`, `[2]`...
    pub answer: String,
    pub citations: Vec<Citation>,
    /// The jurisdiction filter applied, or, without one, the jurisdiction of the sources
    /// (`eu`, `us`, `international` or `mixed`).
    pub jurisdiction: String,
    /// The sector applied, if any.
    pub context: Option<String>,
    pub conversation_id: String,
    /// `extractive` (no LLM) or `generated` (retrieval-augmented generation).
    pub mode: String,
    /// Why a generated answer was replaced by the extractive one, when it was.
    pub fallback: Option<String>,
}

/// What a streaming client learns first, once retrieval is done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMeta {
    pub conversation_id: String,
    pub jurisdiction: Option<String>,
    pub context: Option<String>,
    /// How many passages were retrieved.
    pub passages: usize,
    /// `extractive` or `generated`: how the answer will be made.
    pub mode: String,
}

/// What an answer streams while it is produced.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatEvent {
    /// The next piece of the answer's text.
    Delta(String),
    /// A citation, sent right after the delta that first uses it; `index` is its `n`.
    Citation { index: usize, citation: Citation },
}

/// Why a question was not answered. Each maps to one HTTP status and one MCP error.
#[derive(Debug, thiserror::Error)]
pub enum GloxiError {
    #[error("this key lacks the {0} scope")]
    Forbidden(Scope),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{field}: unknown value {given:?}; known: {}", known.join(", "))]
    Unknown {
        field: &'static str,
        given: String,
        known: &'static [&'static str],
    },
    #[error("conversation {0} not found")]
    NotFound(String),
    #[error("the guardians blocked the {what}: {}", reasons.join(", "))]
    Blocked {
        what: &'static str,
        reasons: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a background task failed: {0}")]
    Task(String),
}

/// A chat message for generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: &'static str,
    pub content: String,
}

/// Why generation produced no text.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Warden's own governance refused the call (policy, guardians, limits): `code` is the
    /// machine-readable reason (`rate_limit_exceeded`, `request_blocked`...).
    #[error("the LLM call was refused ({status} {code})")]
    Refused { status: u16, code: String },
    /// The provider failed or answered something unusable.
    #[error("the LLM call failed: {0}")]
    Failed(String),
}

/// A boxed future, so that [`Generate`] can be used as a trait object.
pub type GenerateFuture<'a> =
    Pin<Box<dyn Future<Output = Result<String, GenerateError>> + Send + 'a>>;

/// An LLM that answers on behalf of a caller. The seam exists because the implementation
/// lives in the HTTP front (`warden-proxy`, which owns the governed LLM call path) and this
/// crate knows nothing of HTTP; Warden has one implementation, the governed call.
pub trait Generate: Send + Sync {
    fn generate<'a>(&'a self, caller: &'a Principal, messages: Vec<Message>) -> GenerateFuture<'a>;
}

/// A question checked, with its passages, ready to be answered.
pub struct Prepared {
    pub meta: ChatMeta,
    principal: Principal,
    query: String,
    history: Vec<(String, String)>,
    hits: Vec<usize>,
}

/// The Gloxi service, shared by the REST routes and the MCP tool.
pub struct Gloxi {
    /// Shared with the blocking task that builds it.
    index: Arc<OnceLock<Arc<Index>>>,
    store: Arc<Store>,
    guardians: OnceLock<Arc<Guardians>>,
    /// How to compile the guardians when they were not given.
    guardian_config: Option<GuardianConfig>,
    generator: Option<Arc<dyn Generate>>,
}

impl Gloxi {
    /// Gloxi with the data plane's guardians.
    pub fn new(
        store: Arc<Store>,
        guardians: Arc<Guardians>,
        generator: Option<Arc<dyn Generate>>,
    ) -> Gloxi {
        Gloxi {
            index: Arc::new(OnceLock::new()),
            store,
            guardians: OnceLock::from(guardians),
            guardian_config: None,
            generator,
        }
    }

    /// Gloxi without an LLM whose guardians are compiled at the first question: for
    /// `warden mcp` on stdio, which desktop clients spawn and expect to answer at once.
    pub fn with_lazy_guardians(store: Arc<Store>, config: GuardianConfig) -> Gloxi {
        Gloxi {
            index: Arc::new(OnceLock::new()),
            store,
            guardians: OnceLock::new(),
            guardian_config: Some(config),
            generator: None,
        }
    }

    fn guardians(&self) -> Result<&Arc<Guardians>, GloxiError> {
        if let Some(g) = self.guardians.get() {
            return Ok(g);
        }
        let config = self.guardian_config.clone().unwrap_or_default();
        let built = Guardians::new(config).map_err(|e| GloxiError::Task(e.to_string()))?;
        Ok(self.guardians.get_or_init(|| Arc::new(built)))
    }

    /// The index, built on first use (a fraction of a second in a release build). Concurrent
    /// first uses wait for one build.
    pub fn index(&self) -> Arc<Index> {
        build_once(&self.index)
    }

    /// The index, built off the async workers if it is not built yet.
    async fn index_async(&self) -> Result<Arc<Index>, GloxiError> {
        if let Some(i) = self.index.get() {
            return Ok(i.clone());
        }
        let cell = self.index.clone();
        tokio::task::spawn_blocking(move || build_once(&cell))
            .await
            .map_err(|e| GloxiError::Task(e.to_string()))
    }

    /// Whether answers are generated by an LLM.
    pub fn generates(&self) -> bool {
        self.generator.is_some()
    }

    /// Checks the question, runs the guardians on it, opens or loads its conversation and
    /// retrieves its passages.
    pub async fn prepare(&self, p: &Principal, req: Ask) -> Result<Prepared, GloxiError> {
        if !p.allows(&Scope::Read) {
            return Err(GloxiError::Forbidden(Scope::Read));
        }
        let chars = req.query.chars().count();
        if req.query.trim().is_empty() {
            return Err(GloxiError::Invalid {
                field: "query",
                message: "must not be empty".into(),
            });
        }
        if chars > MAX_QUERY_CHARS {
            return Err(GloxiError::Invalid {
                field: "query",
                message: format!(
                    "at most {MAX_QUERY_CHARS} characters; this one has {chars}: ask one question at a time"
                ),
            });
        }
        let jurisdiction = known(
            "jurisdiction",
            req.jurisdiction.as_deref(),
            &corpus::JURISDICTIONS,
        )?;
        let context = known("context", req.context.as_deref(), &corpus::SECTORS)?;
        let scan = self.guardians()?.scan_text(&req.query, Channel::UserInput);
        if scan.blocked {
            return Err(GloxiError::Blocked {
                what: "question",
                reasons: reasons(&scan.findings),
            });
        }
        let query = scan.redacted;

        let store = self.store.clone();
        let tenant = p.tenant.clone();
        let conversation_id = req.conversation_id.clone();
        let (jurisdiction, context) = (jurisdiction.map(str::to_owned), context.map(str::to_owned));
        let conversation =
            tokio::task::spawn_blocking(move || -> Result<Conversation, GloxiError> {
                match conversation_id {
                    Some(id) => {
                        let mut c = store
                            .gloxi_load(&tenant, &id)?
                            .ok_or(GloxiError::NotFound(id))?;
                        c.jurisdiction = jurisdiction.or(c.jurisdiction);
                        c.context = context.or(c.context);
                        Ok(c)
                    }
                    None => {
                        let id = crate::decisions::new_id("conv");
                        store.gloxi_create(
                            &tenant,
                            &id,
                            jurisdiction.as_deref(),
                            context.as_deref(),
                        )?;
                        Ok(Conversation {
                            id,
                            jurisdiction,
                            context,
                            turns: Vec::new(),
                        })
                    }
                }
            })
            .await
            .map_err(|e| GloxiError::Task(e.to_string()))??;

        let index = self.index_async().await?;
        let history: Vec<String> = conversation.turns.iter().map(|(q, _)| q.clone()).collect();
        let hits = index
            .search(&Query {
                text: &query,
                history: &history,
                jurisdiction: conversation.jurisdiction.as_deref(),
                sector: conversation.context.as_deref(),
                limit: PASSAGES,
            })
            .into_iter()
            .map(|h| h.passage)
            .collect::<Vec<_>>();
        let meta = ChatMeta {
            conversation_id: conversation.id.clone(),
            jurisdiction: conversation.jurisdiction.clone(),
            context: conversation.context.clone(),
            passages: hits.len(),
            mode: if self.generator.is_some() && !hits.is_empty() {
                "generated".into()
            } else {
                "extractive".into()
            },
        };
        Ok(Prepared {
            meta,
            principal: p.clone(),
            query,
            history: conversation.turns,
            hits,
        })
    }

    /// Answers a prepared question, sending deltas and citations to `events` as they are
    /// produced (if given), and stores the turn.
    pub async fn answer(
        &self,
        prepared: Prepared,
        events: Option<mpsc::Sender<ChatEvent>>,
    ) -> Result<ChatAnswer, GloxiError> {
        let index = self.index();
        let passages: Vec<&Passage> = prepared.hits.iter().map(|i| index.passage(*i)).collect();
        let lookup = |id: &str| index.passages().iter().find(|p| p.id == id);

        let mut fallback = None;
        let mut generated: Option<(String, Vec<Citation>)> = None;
        if let (Some(generator), false) = (&self.generator, passages.is_empty()) {
            match self
                .generate(generator.as_ref(), &prepared, &passages)
                .await
            {
                Ok(g) => generated = Some(g),
                Err(reason) => fallback = Some(reason),
            }
        }
        let (mode, text, citations) = match generated {
            Some((text, citations)) => ("generated", text, citations),
            None => {
                let (text, used) = answer::extractive(&prepared.query, &passages, lookup);
                let citations = used.iter().map(|u| citation(u.passage, &u.quote)).collect();
                ("extractive", text, citations)
            }
        };
        // The guardians on the answer: redact in place, refuse a blocked one.
        let scan = self.guardians()?.scan_text(&text, Channel::Response);
        if scan.blocked {
            return Err(GloxiError::Blocked {
                what: "answer",
                reasons: reasons(&scan.findings),
            });
        }
        let text = scan.redacted;

        if let Some(tx) = &events {
            stream_out(tx, &text, &citations).await;
        }
        let jurisdiction = match &prepared.meta.jurisdiction {
            Some(j) => j.clone(),
            None => {
                let mut js: Vec<&str> = passages.iter().map(|p| p.jurisdiction).collect();
                js.sort_unstable();
                js.dedup();
                match js.as_slice() {
                    [one] => (*one).to_owned(),
                    [] => "none".to_owned(),
                    _ => "mixed".to_owned(),
                }
            }
        };
        let out = ChatAnswer {
            answer: text,
            citations,
            jurisdiction,
            context: prepared.meta.context.clone(),
            conversation_id: prepared.meta.conversation_id.clone(),
            mode: mode.to_owned(),
            fallback,
        };
        let store = self.store.clone();
        let (id, query, answer, mode) = (
            out.conversation_id.clone(),
            prepared.query,
            out.answer.clone(),
            out.mode.clone(),
        );
        let cites = serde_json::to_string(&out.citations).expect("citations serialize");
        tokio::task::spawn_blocking(move || {
            store.gloxi_append(&id, &query, &answer, &cites, &mode)
        })
        .await
        .map_err(|e| GloxiError::Task(e.to_string()))??;
        tracing::info!(
            tenant = %prepared.principal.tenant,
            conversation = %out.conversation_id,
            mode = %out.mode,
            citations = out.citations.len(),
            fallback = out.fallback.as_deref().unwrap_or(""),
            "Gloxi answered"
        );
        Ok(out)
    }

    /// Generation with validation: one retry, then the reason for falling back.
    async fn generate(
        &self,
        generator: &dyn Generate,
        prepared: &Prepared,
        passages: &[&Passage],
    ) -> Result<(String, Vec<Citation>), String> {
        let mut messages = vec![Message {
            role: "system",
            content: answer::system_prompt(passages),
        }];
        for (q, a) in &prepared.history {
            messages.push(Message {
                role: "user",
                content: q.clone(),
            });
            messages.push(Message {
                role: "assistant",
                content: a.clone(),
            });
        }
        messages.push(Message {
            role: "user",
            content: prepared.query.clone(),
        });
        let mut last = String::new();
        for attempt in 0..2 {
            let text = generator
                .generate(&prepared.principal, messages.clone())
                .await
                .map_err(|e| match e {
                    GenerateError::Refused { code, .. } => format!("llm_refused: {code}"),
                    GenerateError::Failed(m) => format!("llm_failed: {m}"),
                })?;
            match answer::validate(&text, passages.len()) {
                Ok((text, order)) => {
                    let words = answer::question_words(&prepared.query);
                    let citations = order
                        .iter()
                        .map(|i| {
                            let p = passages[*i];
                            citation(p, &answer::best_quote(&p.text, &words))
                        })
                        .collect();
                    let guardians = self.guardians().map_err(|e| e.to_string())?;
                    let scan = guardians.scan_text(&text, Channel::Response);
                    if scan.blocked {
                        return Err(format!(
                            "answer_blocked: {}",
                            reasons(&scan.findings).join(", ")
                        ));
                    }
                    return Ok((text, citations));
                }
                Err(invalid) => {
                    tracing::warn!(attempt, reason = %invalid.reason(), "Gloxi refused a generated answer");
                    last = invalid.reason();
                    if attempt == 0 {
                        messages.push(Message {
                            role: "assistant",
                            content: text,
                        });
                        messages.push(Message {
                            role: "user",
                            content: format!(
                                "That answer was rejected: {last}. Answer again, citing only the numbered passages [1] to [{}], every paragraph and point with a citation.",
                                passages.len()
                            ),
                        });
                    }
                }
            }
        }
        Err(format!("invalid_citations: {last}"))
    }
}

fn build_once(cell: &OnceLock<Arc<Index>>) -> Arc<Index> {
    cell.get_or_init(|| {
        let started = std::time::Instant::now();
        let index = Index::build(corpus::passages());
        tracing::info!(
            passages = index.passages().len(),
            ms = started.elapsed().as_millis() as u64,
            "Gloxi index built"
        );
        Arc::new(index)
    })
    .clone()
}

fn known(
    field: &'static str,
    given: Option<&str>,
    list: &'static [&'static str],
) -> Result<Option<&'static str>, GloxiError> {
    let Some(g) = given else { return Ok(None) };
    let lower = g.trim().to_ascii_lowercase();
    list.iter()
        .copied()
        .find(|k| *k == lower)
        .map(Some)
        .ok_or_else(|| GloxiError::Unknown {
            field,
            given: g.chars().take(64).collect(),
            known: list,
        })
}

fn reasons(findings: &[warden_guardians::Finding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in findings.iter().filter(|f| f.action == Action::Block) {
        let r = format!("GUARDIAN_{}", f.detector.as_str().to_ascii_uppercase());
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

fn citation(p: &Passage, quote: &str) -> Citation {
    Citation {
        id: p.id.clone(),
        regulation: p.regulation.clone(),
        article: p.article.clone(),
        paragraph: p.paragraph.clone(),
        link: p.link.clone(),
        quote: quote.to_owned(),
    }
}

/// Sends the answer line by line, each citation right after the line that first uses it.
async fn stream_out(tx: &mpsc::Sender<ChatEvent>, text: &str, citations: &[Citation]) {
    let mut sent = vec![false; citations.len()];
    for line in text.split_inclusive('\n') {
        if tx.send(ChatEvent::Delta(line.to_owned())).await.is_err() {
            return;
        }
        for n in answer::cited_in(line) {
            if let Some(c) = citations.get(n.wrapping_sub(1)) {
                if !sent[n - 1] {
                    sent[n - 1] = true;
                    let event = ChatEvent::Citation {
                        index: n,
                        citation: c.clone(),
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
