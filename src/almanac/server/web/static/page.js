// The page's wiring: the API key panel, the notice line, the collection and adapter pickers, the question
// form and the document drop zone. No framework and no build step: ES modules served by `almanac serve`.

import { ApiError, apiKey, describe, getJson, setApiKey } from "./api.js";
import { Conversation } from "./ask.js";
import { Library } from "./documents.js";
import { byId, el } from "./dom.js";

const notice = byId("notice");
const keyPanel = byId("key-panel");
const keyToggle = byId("key-toggle");
const collection = byId("collection");
const adapter = byId("adapter");
const question = byId("question");

/** Show one clear line for `error`; a 401 also opens the key panel. */
function showError(error) {
  notice.textContent = describe(error);
  notice.hidden = false;
  if (error instanceof ApiError && error.status === 401) openKeyPanel(true);
}

function clearNotice() {
  notice.hidden = true;
  notice.textContent = "";
}

function openKeyPanel(open) {
  keyPanel.hidden = !open;
  keyToggle.setAttribute("aria-expanded", String(open));
  if (open) byId("key-input").focus();
}

function fill(select, options, selected) {
  select.replaceChildren(...options.map(([value, label]) => el("option", { text: label, attrs: { value } })));
  if (selected !== undefined) select.value = selected;
}

/** Collections from GET /v1/collections, adapters from GET /v1/models (its `almanac@ADAPTER` ids). */
async function loadPickers() {
  const listed = await getJson("/v1/collections");
  const names = listed.collections.map((c) => [c.name, `${c.name} (${c.documents} documents)`]);
  if (!names.some(([name]) => name === listed.default)) names.unshift([listed.default, `${listed.default} (empty)`]);
  fill(collection, names, collection.value || listed.default);
  if (!collection.value) collection.value = listed.default;
  const models = await getJson("/v1/models");
  const adapters = [...new Set(models.data.map((m) => m.id.split("@")[1]).filter(Boolean))].sort();
  const picked = adapter.value;
  fill(adapter, [["", "server default"], ...adapters.map((a) => [a, a])], adapters.includes(picked) ? picked : "");
}

/** Reload pickers and documents; `clear` first clears the notice (never after: that would hide a newer one). */
async function loadAll(clear = true) {
  if (clear) clearNotice();
  try {
    await loadPickers();
  } catch (error) {
    showError(error);
    return;
  }
  await library.refresh();
}

/** While the server loads its models /readyz answers 503: say so on its own line, until it is ready. */
async function watchReadiness() {
  const line = byId("readiness");
  for (;;) {
    const response = await fetch("/readyz", { cache: "no-store" }).catch(() => null);
    const body = response ? await response.json().catch(() => ({})) : {};
    line.hidden = Boolean(response?.ok);
    if (response?.ok) return;
    line.textContent = body.status === "failed"
      ? `The server failed to load (${body.detail}); see its log.`
      : `The server is still loading (${body.detail || "starting"}); answers start once it is ready.`;
    if (body.status === "failed") return;
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

function keyChanged(key) {
  setApiKey(key);
  keyToggle.textContent = key ? "API key (set)" : "API key";
  loadAll();
}

const conversation = new Conversation(byId("conversation"), showError);
const notices = { show: showError, clear: clearNotice };
const library = new Library(() => collection.value, notices, () => loadAll(false));

byId("ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = question.value.trim();
  if (!text) return;
  const button = byId("ask-button");
  button.disabled = true;
  clearNotice();
  question.value = "";
  await conversation.ask(text, collection.value, adapter.value);
  button.disabled = false;
  question.focus();
});

question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    byId("ask-form").requestSubmit();
  }
});

byId("new-conversation").addEventListener("click", () => {
  conversation.clear();
  question.focus();
});

collection.addEventListener("change", () => library.refresh());
byId("documents-refresh").addEventListener("click", () => loadAll());

keyToggle.addEventListener("click", () => openKeyPanel(keyPanel.hidden));
byId("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = byId("key-input");
  const key = input.value.trim();
  input.value = "";
  openKeyPanel(false);
  keyToggle.focus();
  keyChanged(key);
});
byId("key-forget").addEventListener("click", () => {
  byId("key-input").value = "";
  keyChanged("");
});

const fileInput = byId("file-input");
fileInput.addEventListener("change", async () => {
  const files = [...fileInput.files];
  if (files.length) await library.upload(files);
  fileInput.value = "";
});

const dropZone = byId("drop-zone");
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault();
  dropZone.classList.add("over");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("over");
  const files = [...(event.dataTransfer?.files || [])];
  if (files.length) library.upload(files);
});

keyToggle.textContent = apiKey() ? "API key (set)" : "API key";
watchReadiness();
loadAll();
