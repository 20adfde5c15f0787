//! Reading hits' documents: stored fields, highlighted snippets weighted by the request's
//! (global) statistics, and BM25 explanations — for a fetch by id or for the hits that
//! survived a node's cut (query-and-fetch). What to read is a [`DocsPlan`], prepared once
//! per call, not per shard.

use std::collections::BTreeMap;

use scatter_core::document::stored_fields_json;
use scatter_core::limits::MAX_SNIPPET_FIELDS;
use scatter_proto::v1::{FetchRequest, FetchResponse, FetchedDoc, SearchRequest, SearchResponse};
use tantivy::query::{Bm25StatisticsProvider, EnableScoring, Weight};
use tantivy::schema::Field;
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Score, Searcher, TantivyDocument, Term};

use crate::error::ShardError;
use crate::plan::{DocsPlan, SearchPlan};
use crate::shard::Located;
use crate::shard::{generation, Shard};
use crate::stats::GlobalStatsProvider;

pub use crate::plan::DEFAULT_SNIPPET_CHARS;

impl Shard {
    /// Ranked search: hits sorted by score descending, ties by external id ascending.
    /// Scores with the request's global statistics when given, else with local ones.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResponse, ShardError> {
        let plan = SearchPlan::new(
            self.parser(),
            self.schema(),
            std::sync::Arc::new(req.clone()),
            None,
        )?;
        let (mut resp, located) = self.search_located(&plan)?;
        if req.fetch {
            let ids: Vec<String> = resp.hits.iter().map(|h| h.id.clone()).collect();
            resp.docs = self.fetch_hits(&plan, &ids, &located)?;
        }
        Ok(resp)
    }

    /// The documents (and snippets) of `ids`, the ids of a prefix of the hits of the search
    /// that gave `located`, read from the searcher that search ran on.
    pub fn fetch_hits(
        &self,
        plan: &SearchPlan,
        ids: &[String],
        located: &Located,
    ) -> Result<Vec<FetchedDoc>, ShardError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let n = ids.len().min(located.addrs.len());
        let docs = plan.docs();
        let read = self.read_docs(&located.searcher, &docs, ids, &located.addrs[..n])?;
        Ok(read.docs)
    }

    /// Stored fields of the documents with these external ids (unknown ids are skipped), and
    /// highlighted snippets of the asked fields, weighted by the request's statistics.
    pub fn fetch(&self, req: &FetchRequest) -> Result<FetchResponse, ShardError> {
        let text_query = match DocsPlan::needs_query(&req.snippet_fields, req.explain) {
            true => Some(self.parse_in(&req.query, req.lenient)?),
            false => None,
        };
        let stats = req
            .stats
            .as_ref()
            .map(|s| GlobalStatsProvider::new(s, self.schema()));
        let plan = DocsPlan::of_fetch(req, text_query.as_deref(), stats.as_ref());
        let searcher = self.searcher_for(&req.pits, 0)?;
        self.read_docs(&searcher, &plan, &req.ids, &[])
    }

    /// The documents of `ids` on `searcher`, with the addresses of the ids when known
    /// (`addrs[i]` for `ids[i]`; the others are looked up by id).
    pub fn read_docs(
        &self,
        searcher: &Searcher,
        plan: &DocsPlan<'_>,
        ids: &[String],
        addrs: &[Option<DocAddress>],
    ) -> Result<FetchResponse, ShardError> {
        let generators = self.snippet_generators(searcher, plan)?;
        let explainer = self.explainer(searcher, plan)?;
        let tags = (!plan.tags.0.is_empty() || !plan.tags.1.is_empty()).then_some(plan.tags);
        let mut docs = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            crate::watch::checkpoint();
            let known = addrs.get(i).copied().flatten();
            let Some(addr) = known.map_or_else(|| self.find(searcher, id), |a| Ok(Some(a)))? else {
                continue;
            };
            let doc: TantivyDocument = searcher.doc(addr)?;
            let snippets = generators
                .iter()
                .map(|(name, generator)| {
                    let mut snippet = generator.snippet_from_doc(&doc);
                    if let Some((pre, post)) = tags {
                        snippet.set_snippet_prefix_postfix(pre, post);
                    }
                    (name.clone(), snippet.to_html())
                })
                .filter(|(_, html)| !html.is_empty())
                .collect();
            let mut fields = stored_fields_json(&doc, self.schema());
            fields.remove(&self.meta().schema.id_field);
            let explanation_json = match &explainer {
                Some(weight) => {
                    let segment = searcher.segment_reader(addr.segment_ord);
                    serde_json::to_string(&weight.explain(segment, addr.doc_id)?)
                        .unwrap_or_default()
                }
                None => String::new(),
            };
            docs.push(FetchedDoc {
                id: id.clone(),
                // Straight into a byte buffer (`Value`'s `Display` goes through a formatter).
                fields_json: serde_json::to_string(&fields).unwrap_or_default(),
                snippets,
                shard: self.meta().shard,
                explanation_json,
            });
        }
        Ok(FetchResponse {
            docs,
            generation: generation(searcher),
            shards: Vec::new(),
        })
    }

    /// With `explain`: the query's weight scored with the request's (global) statistics,
    /// whose `explain` gives the BM25 breakdown one index would give.
    fn explainer(
        &self,
        searcher: &Searcher,
        plan: &DocsPlan<'_>,
    ) -> Result<Option<Box<dyn Weight>>, ShardError> {
        let (true, Some(query)) = (plan.explain, plan.text_query) else {
            return Ok(None);
        };
        let provider: &dyn Bm25StatisticsProvider = match plan.stats {
            Some(global) => global,
            None => searcher,
        };
        let scoring = EnableScoring::enabled_from_statistics_provider(provider, searcher);
        Ok(Some(query.weight(scoring)?))
    }

    /// One snippet generator per asked field. Terms are weighted like tantivy's own
    /// `SnippetGenerator::create` (1 / (1 + doc_freq)), but with the given (global) doc
    /// frequencies, so snippets do not depend on how documents fell into shards.
    fn snippet_generators(
        &self,
        searcher: &Searcher,
        plan: &DocsPlan<'_>,
    ) -> Result<Vec<(String, SnippetGenerator)>, ShardError> {
        let Some(query) = plan.text_query.filter(|_| !plan.snippet_fields.is_empty()) else {
            return Ok(Vec::new());
        };
        let mut terms = Vec::new();
        query.query_terms(&mut |term, _| terms.push(term.clone()));
        let provider: &dyn Bm25StatisticsProvider = match plan.stats {
            Some(global) => global,
            None => searcher,
        };
        self.generators(searcher, plan, &terms, provider)
    }

    fn generators(
        &self,
        searcher: &Searcher,
        plan: &DocsPlan<'_>,
        terms: &[Term],
        provider: &dyn Bm25StatisticsProvider,
    ) -> Result<Vec<(String, SnippetGenerator)>, ShardError> {
        let mut names: Vec<&String> = plan.snippet_fields.iter().collect();
        names.sort();
        names.dedup();
        if names.len() > MAX_SNIPPET_FIELDS {
            return Err(ShardError::InvalidArgument(format!(
                "{} snippet fields; at most {MAX_SNIPPET_FIELDS}",
                names.len()
            )));
        }
        let mut generators = Vec::new();
        for name in names {
            let field = self.text_field(name)?;
            let mut weights = BTreeMap::new();
            for term in terms.iter().filter(|t| t.field() == field) {
                let doc_freq = provider.doc_freq(term)?;
                if let (Some(text), true) = (term.value().as_str(), doc_freq > 0) {
                    weights.insert(text.to_string(), 1.0 / (1.0 + doc_freq as Score));
                }
            }
            let tokenizer = searcher.index().tokenizer_for_field(field)?;
            let max_chars = match plan.snippet_max_chars {
                0 => DEFAULT_SNIPPET_CHARS,
                n => n as usize,
            };
            generators.push((
                name.clone(),
                SnippetGenerator::new(weights, tokenizer, field, max_chars),
            ));
        }
        Ok(generators)
    }

    /// A stored, tokenized field (what a snippet can be made of).
    fn text_field(&self, name: &str) -> Result<Field, ShardError> {
        let spec = self
            .meta()
            .schema
            .field(name)
            .filter(|f| f.kind == scatter_core::FieldKind::Text && f.stored && f.indexed);
        match (spec, self.schema().get_field(name)) {
            (Some(_), Ok(field)) => Ok(field),
            _ => Err(ShardError::InvalidArgument(format!(
                "snippet field {name:?} is not a stored, indexed text field"
            ))),
        }
    }
}
