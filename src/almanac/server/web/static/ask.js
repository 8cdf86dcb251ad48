// Asking: one conversation of turns. Each answer streams from POST /v1/query (stream: true) token by token;
// when it is done, its [n] markers become links to the sources listed below it, and the cited ones are marked.
// The conversation's earlier turns go with each question (`history`), so follow-ups are understood.

import { ApiError, request, sseEvents } from "./api.js";
import { el } from "./dom.js";

const MARKER = /\[(\d+)\]/g;

/** The turns shown in `list`; `onError(error)` reports a failed request on the page's notice line. */
export class Conversation {
  constructor(list, onError) {
    this.list = list;
    this.onError = onError;
    this.turns = []; // {question, answer} of the answered turns, oldest first
    this.count = 0;
    this.controller = null;
  }

  /** The earlier turns as the API takes them. */
  history() {
    return this.turns.flatMap((t) => [
      { role: "user", content: t.question },
      { role: "assistant", content: t.answer },
    ]);
  }

  /** Forget every turn (and stop an answer still streaming). */
  clear() {
    this.controller?.abort();
    this.turns = [];
    this.list.replaceChildren();
  }

  /** Ask `question`; resolves when the answer is complete or failed. */
  async ask(question, collection, adapter) {
    const view = new TurnView(++this.count, question);
    this.list.append(view.root);
    const body = { question, stream: true, history: this.history() };
    if (collection) body.collection = collection;
    if (adapter) body.adapter = adapter;
    const controller = (this.controller = new AbortController());
    try {
      const response = await request("POST", "/v1/query", { json: body, signal: controller.signal });
      const done = await view.follow(sseEvents(response));
      this.turns.push({ question, answer: done.answer });
    } catch (error) {
      if (error.name === "AbortError") return;
      view.fail();
      this.onError(error);
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }
}

/** One question, its answer and its sources, as shown. */
class TurnView {
  constructor(n, question) {
    this.n = n;
    this.hits = [];
    this.answer = el("p", { className: "answer", attrs: { "aria-busy": "true", "aria-live": "polite" } });
    this.meta = el("p", { className: "meta", text: "Searching…" });
    this.sources = el("ol", { className: "sources", attrs: { "aria-label": `Sources of answer ${n}` } });
    const asked = el("p", { className: "question" }, el("span", { className: "who", text: "You: " }), question);
    this.root = el("li", { className: "turn" }, asked, this.answer, this.meta, this.sources);
  }

  /** Show the events of the stream; resolves to the `done` event's data. */
  async follow(events) {
    for await (const { event, data } of events) {
      if (event === "sources") this.showSources(data);
      else if (event === "token") this.answer.append(data.text);
      else if (event === "done") return this.finish(data);
      else if (event === "error") throw new ApiError(null, data.error?.type, data.error?.message);
    }
    throw new ApiError(null, "stream", "the answer stopped before it was complete; ask again");
  }

  showSources(data) {
    this.model = data.adapter ? `${data.model} + ${data.adapter}` : data.model;
    this.meta.textContent = "Answering…";
    this.listSources(data.sources);
  }

  listSources(hits) {
    this.hits = hits;
    this.sources.replaceChildren(...hits.map((hit, i) => sourceItem(this.sourceId(i + 1), i + 1, hit)));
  }

  finish(done) {
    if (done.sources) this.listSources(done.sources); // with the rows the model's lookups returned
    this.answer.replaceChildren(...this.linked(done.answer));
    this.answer.setAttribute("aria-busy", "false");
    for (const n of done.cited) {
      const item = document.getElementById(this.sourceId(n));
      if (!item) continue;
      item.classList.add("cited");
      item.querySelector("summary").append(el("span", { className: "badge", text: "cited" }));
    }
    this.meta.textContent = `${this.model} · ${describeAnswer(done, this.hits.length)}`;
    return done;
  }

  fail() {
    this.answer.setAttribute("aria-busy", "false");
    this.meta.textContent = "No answer: see the message at the top of the page.";
    this.root.classList.add("failed");
  }

  sourceId(n) {
    return `turn${this.n}-source${n}`;
  }

  /** The answer's text with each [n] of a listed source as a link that opens that source. */
  linked(text) {
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(MARKER)) {
      const n = Number(match[1]);
      if (n < 1 || n > this.hits.length) continue; // the server removes markers to no source; be safe
      parts.push(text.slice(last, match.index), citeLink(this.sourceId(n), n));
      last = match.index + match[0].length;
    }
    parts.push(text.slice(last));
    return parts;
  }
}

function citeLink(id, n) {
  const link = el("a", { className: "cite", text: `[${n}]`, attrs: { href: `#${id}`, title: `source ${n}` } });
  link.addEventListener("click", (event) => {
    event.preventDefault();
    const details = document.getElementById(id)?.querySelector("details");
    if (!details) return;
    details.open = true;
    details.scrollIntoView({ block: "nearest" });
    details.querySelector("summary").focus();
  });
  return link;
}

function sourceItem(id, n, hit) {
  const summary = el(
    "summary",
    {},
    el("span", { className: "num", text: `[${n}]` }),
    el("span", { className: "name", text: sourceName(hit) }),
    el("span", { className: "locator", text: hit.locator }),
  );
  const body = hit.kind === "row" ? rowValues(hit.text) : el("p", { className: "passage", text: hit.text });
  const origin = el("p", { className: "origin", text: hit.source });
  const details = el("details", {}, summary, origin, body);
  return el("li", { className: `source ${hit.kind}`, attrs: { id } }, details);
}

/** A document's file name, or a row's db://source/table/key. */
function sourceName(hit) {
  if (hit.kind === "row") return hit.source;
  return hit.source.split(/[\\/]/).pop() || hit.source;
}

/** A row's live values (re-read from the source database for this answer) as a list of column: value. */
function rowValues(text) {
  const list = el("dl", { className: "row-values" });
  for (const cell of text.split(" | ")) {
    const colon = cell.indexOf(": ");
    if (colon < 0) return el("p", { className: "passage", text });
    list.append(el("dt", { text: cell.slice(0, colon) }), el("dd", { text: cell.slice(colon + 2) }));
  }
  return el("div", {}, el("p", { className: "live", text: "Live values, read from the database for this answer:" }), list);
}

function describeAnswer(done, sources) {
  const said = [];
  if (done.refused) said.push("the sources do not answer this");
  else if (sources === 0) said.push("no source found");
  else said.push(done.supported ? "every claim has a source" : "some claims have no source");
  said.push(`cited ${done.cited.length} of ${sources} sources`);
  const stages = ["retrieval", "prompt", "queue", "generation"];
  const seconds = stages.reduce((sum, stage) => sum + (done.timings?.[stage] || 0), 0);
  if (seconds) said.push(`${seconds.toFixed(1)} s`);
  return said.join(" · ");
}
