// Documents: upload files (POST /v1/documents), follow the ingest job (GET /v1/jobs/{id}) with its items,
// chunks, rate, time left and per-item errors, and list or delete a collection's documents (write scope).

import { ApiError, getJson, request } from "./api.js";
import { byId, duration, el } from "./dom.js";

const FILES_PER_REQUEST = 20; // the server's limit per upload (documents/library.py MAX_FILES)
const POLL_MS = 500;
const PAGE = 200;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The documents panel; `collection()` names the picked collection, `notice` shows and clears failures. */
export class Library {
  constructor(collection, notice, onChange) {
    this.collection = collection;
    this.onError = notice.show;
    this.clearError = notice.clear;
    this.onChange = onChange; // after an upload or a delete: counts changed
    this.list = byId("documents");
    this.job = new JobView();
  }

  /** List the picked collection's documents (a collection not created yet has none). */
  async refresh() {
    const name = this.collection();
    byId("documents-collection").textContent = name || "no collection";
    if (!name) return this.show([], 0);
    try {
      const page = await getJson(`/v1/documents?collection=${encodeURIComponent(name)}&limit=${PAGE}`);
      this.show(page.documents, page.total);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return this.show([], 0);
      this.onError(error);
    }
  }

  show(documents, total) {
    this.list.replaceChildren(...documents.map((doc) => this.item(doc)));
    if (total > documents.length) this.list.append(el("li", { text: `… and ${total - documents.length} more` }));
    byId("documents-empty").hidden = total > 0;
  }

  item(doc) {
    const file = doc.source.split(/[\\/]/).pop();
    const name = doc.kind === "row" ? doc.source : doc.title || file;
    const remove = el("button", { text: "Delete", attrs: { type: "button", "aria-label": `Delete ${name}` } });
    remove.addEventListener("click", () => this.remove(doc, remove));
    const where = doc.kind === "row" ? "row" : file;
    const about = `${where} · ${doc.chunks} chunk${doc.chunks === 1 ? "" : "s"} · ${doc.updated_at.slice(0, 16).replace("T", " ")}`;
    return el(
      "li",
      { className: "document" },
      el("span", { className: "name", text: name, attrs: { title: doc.source } }),
      el("span", { className: "about", text: about }),
      remove,
    );
  }

  /** Upload `files` into the picked collection and follow the job until it is done. */
  async upload(files) {
    const name = this.collection();
    this.clearError();
    try {
      for (let start = 0; start < files.length; start += FILES_PER_REQUEST) {
        const form = new FormData();
        for (const file of files.slice(start, start + FILES_PER_REQUEST)) form.append("file", file, file.name);
        if (name) form.append("collection", name);
        this.job.start(`Uploading ${files.length} file${files.length === 1 ? "" : "s"}…`);
        const response = await request("POST", "/v1/documents?wait=0", { form });
        const { job } = await response.json();
        await this.follow(job);
      }
    } catch (error) {
      this.job.stop(`Upload failed.`);
      this.onError(error);
    }
    await this.onChange();
  }

  async follow(job) {
    while (job.state === "queued" || job.state === "running") {
      this.job.show(job);
      await sleep(POLL_MS);
      job = await getJson(`/v1/jobs/${encodeURIComponent(job.id)}`);
    }
    this.job.show(job);
    return job;
  }

  async remove(doc, button) {
    button.disabled = true;
    this.clearError();
    this.job.start(`Deleting ${doc.title || doc.source}…`);
    try {
      const response = await request("DELETE", `/v1/documents/${doc.id}?wait=30`);
      const body = await response.json();
      await this.follow(body.job);
    } catch (error) {
      button.disabled = false;
      this.onError(error);
    }
    await this.onChange();
  }
}

/** The progress of the current ingest job: a line, a progress bar and the failed items. */
class JobView {
  constructor() {
    this.root = byId("job");
    this.line = byId("job-line");
    this.bar = byId("job-progress");
    this.errors = byId("job-errors");
  }

  start(text) {
    this.root.hidden = false;
    this.line.textContent = text;
    this.bar.removeAttribute("value"); // indeterminate until the job knows its total
    this.errors.replaceChildren();
  }

  stop(text) {
    this.line.textContent = text;
    this.bar.value = 0;
  }

  show(job) {
    const { items, chunks, total } = job.progress;
    const elapsed = Math.max((Date.parse(job.updated_at) - Date.parse(job.created_at)) / 1000, 0.001);
    const parts = [`${items}${total ? ` of ${total}` : ""} items`, `${chunks} chunks`];
    if (job.state === "running" && items) {
      parts.push(`${(chunks / elapsed).toFixed(1)} chunks/s`);
      if (total) parts.push(`about ${duration(((total - items) * elapsed) / items)} left`);
    }
    const state = { queued: "Queued", running: "Ingesting", succeeded: "Done", failed: "Failed" }[job.state];
    const message = job.message ? ` (${job.message})` : "";
    this.line.textContent = `${state}${message}: ${parts.join(" · ")}${job.state === "succeeded" ? ` in ${duration(elapsed)}` : ""}.`;
    if (total) {
      this.bar.max = total;
      this.bar.value = items;
    } else if (job.state === "succeeded" || job.state === "failed") {
      this.bar.max = 1;
      this.bar.value = 1;
    }
    this.errors.replaceChildren(...job.errors.map((e) => el("li", { text: `${e.source}: ${e.reason}` })));
  }
}
