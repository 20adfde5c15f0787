//! The parameters of a search checked and defaulted: every bad value a 400 naming it, before
//! any shard is asked.

use std::time::Duration;
use tokio::time::Instant;

use crate::api_types::{SearchParams, TrackTotalHitsParam};
use crate::config::RootConfig;
use crate::error::ApiError;
use crate::query::search::{Scoring, Search, SnippetOptions, TrackTotalHits};

/// Largest `from + size`.
pub const MAX_WINDOW: i64 = scatter_core::limits::MAX_WINDOW as i64;
/// Checks and defaults the parameters of a search.
pub fn validate(config: &RootConfig, p: SearchParams) -> Result<Search, ApiError> {
    let query =
        p.q.ok_or_else(|| ApiError::bad_param("missing query parameter `q`"))?;
    let size = p.size.unwrap_or(10);
    let from = p.from.unwrap_or(0);
    if size < 0 {
        return Err(ApiError::bad_param(format!(
            "size must be >= 0, got {size}"
        )));
    }
    if from < 0 {
        return Err(ApiError::bad_param(format!(
            "from must be >= 0, got {from}"
        )));
    }
    if from.saturating_add(size) > MAX_WINDOW {
        return Err(ApiError::bad_param(format!(
            "from + size must be <= {MAX_WINDOW}, got {}",
            from.saturating_add(size)
        )));
    }
    let timeout = match p.timeout_ms {
        None => config.default_timeout,
        Some(ms) if ms <= 0 => {
            return Err(ApiError::bad_param(format!(
                "timeout_ms must be > 0, got {ms}"
            )))
        }
        Some(ms) => {
            let t = Duration::from_millis(ms as u64);
            if t > config.max_timeout {
                return Err(ApiError::bad_param(format!(
                    "timeout_ms must be <= {}, got {ms}",
                    config.max_timeout.as_millis()
                )));
            }
            t
        }
    };
    let scoring = match p.scoring.as_deref() {
        None | Some("global") => Scoring::Global,
        Some("local") => Scoring::Local,
        Some(other) => {
            return Err(ApiError::bad_param(format!(
                "scoring must be `global` or `local`, got {other:?}"
            )))
        }
    };
    let lenient = match p.query_mode.as_deref() {
        None | Some("strict") => false,
        Some("lenient") => true,
        Some(other) => {
            return Err(ApiError::bad_param(format!(
                "query_mode must be `strict` or `lenient`, got {other:?}"
            )))
        }
    };
    let snippet = snippet_options(p.snippet_size, &p.snippet_pre_tag, &p.snippet_post_tag)?;
    let mut sort = parse_sort(p.sort.as_deref())?;
    let search_after = p.search_after.map(|a| a.0);
    if search_after.is_some() {
        if from != 0 {
            return Err(ApiError::bad_param(
                "search_after pages start after a hit: `from` must be 0",
            ));
        }
        if sort.is_empty() {
            // By score, then id: the order of an unsorted search.
            sort.push(scatter_proto::v1::SortField {
                field: "_score".into(),
                desc: true,
            });
        }
    }
    let pit = match (p.pit.as_deref(), p.pit_id.as_deref()) {
        (None, None) => None,
        (keep_alive, id) => Some(crate::query::pit_id::PitUse {
            keep_alive_ms: keep_alive
                .map(crate::query::pit::parse_keep_alive)
                .transpose()
                .map_err(ApiError::bad_param)?
                .map_or(0, |d| d.as_millis() as u64),
            id: id
                .map(crate::query::pit_id::PitId::decode)
                .transpose()
                .map_err(ApiError::bad_param)?,
        }),
    };
    let filters = p.filter.map(|f| f.0).unwrap_or_default();
    if filters.len() > scatter_core::query::MAX_FILTERS {
        return Err(ApiError::bad_param(format!(
            "{} filters; at most {}",
            filters.len(),
            scatter_core::query::MAX_FILTERS
        )));
    }
    let snippet_fields = snippet_fields(p.snippet.as_deref().unwrap_or(""))?;
    Ok(Search {
        query,
        lenient,
        filters,
        snippet,
        explain: p.explain.unwrap_or(false),
        sort,
        search_after,
        size: size as usize,
        from: from as usize,
        deadline: Instant::now() + timeout,
        allow_partial: p.allow_partial.unwrap_or(true),
        scoring,
        snippet_fields,
        profile: p.profile.unwrap_or(false),
        track_total_hits: match p.track_total_hits {
            None | Some(TrackTotalHitsParam::Bool(true)) => TrackTotalHits::All,
            Some(TrackTotalHitsParam::Bool(false)) => TrackTotalHits::None,
            Some(TrackTotalHitsParam::Number(n)) if n < 0 => {
                return Err(ApiError::bad_param(format!(
                    "track_total_hits must be true, false or a non-negative integer, got {n}"
                )))
            }
            Some(TrackTotalHitsParam::Number(n)) => TrackTotalHits::UpTo(n as u64),
        },
        aggs: p.aggs.map(|a| a.0),
        pit,
    })
}

/// `snippet=FIELD,...`: distinct names in the order given, at most
/// [`MAX_SNIPPET_FIELDS`](scatter_core::limits::MAX_SNIPPET_FIELDS).
fn snippet_fields(text: &str) -> Result<Vec<String>, ApiError> {
    let max = scatter_core::limits::MAX_SNIPPET_FIELDS;
    let mut fields: Vec<String> = Vec::new();
    for f in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if !fields.iter().any(|have| have == f) {
            if fields.len() == max {
                return Err(ApiError::bad_param(format!(
                    "snippet names more than {max} distinct fields"
                )));
            }
            fields.push(f.to_string());
        }
    }
    Ok(fields)
}

/// Most keys of one `sort`.
pub const MAX_SORT_KEYS: usize = 8;

/// `sort=FIELD[:asc|desc],...` (fields ascending by default, `_score` descending).
fn parse_sort(text: Option<&str>) -> Result<Vec<scatter_proto::v1::SortField>, ApiError> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let keys = text
        .split(',')
        .map(|part| {
            let (field, dir) = part.trim().rsplit_once(':').unwrap_or((part.trim(), ""));
            let desc = match dir {
                "" => field == "_score",
                "asc" => false,
                "desc" => true,
                other => {
                    return Err(ApiError::bad_param(format!(
                        "sort direction must be `asc` or `desc`, got {other:?} in {part:?}"
                    )))
                }
            };
            if field.is_empty() {
                return Err(ApiError::bad_param(format!("empty sort field in {text:?}")));
            }
            Ok(scatter_proto::v1::SortField {
                field: field.to_string(),
                desc,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.len() > MAX_SORT_KEYS {
        return Err(ApiError::bad_param(format!(
            "{} sort keys; at most {MAX_SORT_KEYS}",
            keys.len()
        )));
    }
    Ok(keys)
}

/// Longest `snippet_pre_tag` / `snippet_post_tag`.
pub const MAX_SNIPPET_TAG: usize = 64;

/// Longest `snippet_size`.
pub const MAX_SNIPPET_SIZE: i64 = 10_000;

fn snippet_options(
    size: Option<i64>,
    pre: &Option<String>,
    post: &Option<String>,
) -> Result<SnippetOptions, ApiError> {
    let max_chars = match size {
        None => 0,
        Some(n) if (1..=MAX_SNIPPET_SIZE).contains(&n) => n as u32,
        Some(n) => {
            return Err(ApiError::bad_param(format!(
                "snippet_size must be between 1 and {MAX_SNIPPET_SIZE}, got {n}"
            )))
        }
    };
    for (name, tag) in [("snippet_pre_tag", pre), ("snippet_post_tag", post)] {
        if tag.as_ref().is_some_and(|t| t.len() > MAX_SNIPPET_TAG) {
            return Err(ApiError::bad_param(format!(
                "{name} is longer than {MAX_SNIPPET_TAG} bytes"
            )));
        }
    }
    let tags = (pre.is_some() || post.is_some()).then(|| {
        (
            pre.clone().unwrap_or_else(|| "<b>".into()),
            post.clone().unwrap_or_else(|| "</b>".into()),
        )
    });
    Ok(SnippetOptions { max_chars, tags })
}
