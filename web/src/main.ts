// The dashboard's shell: a router on location.hash, the token field, and the
// banner that asks for a token when the server says one is needed.
import "./style.css";
import { describeError, getToken, isAbort, isAuthError, setToken } from "./api";
import * as activations from "./pages/activations";
import * as job from "./pages/job";
import * as jobs from "./pages/jobs";
import * as models from "./pages/models";
import * as sweeps from "./pages/sweeps";
import * as tryit from "./pages/tryit";

// A page draws itself into `root`; `signal` aborts when the user leaves it
// (its streams, timers and charts stop then).
export interface PageContext {
  root: HTMLElement;
  params: string[];
  signal: AbortSignal;
  // Shows an error of a call: a token prompt for auth errors, else a banner.
  fail(err: unknown): void;
}
type Page = { render(ctx: PageContext): void | Promise<void> };

// #/jobs, #/jobs/<id>, #/sweeps, #/sweeps/<id>, #/models, #/models/<name>/<version>, ...
const routes: Record<string, Page> = {
  jobs, job, sweeps, models, activations, try: tryit,
};

const pageEl = document.getElementById("page")!;
const banner = document.getElementById("banner")!;
const tokenForm = document.getElementById("token-form") as HTMLFormElement;
const tokenInput = document.getElementById("token-input") as HTMLInputElement;
let current: AbortController | null = null;

function showBanner(text: string, kind: "error" | "auth"): void {
  banner.textContent = text;
  banner.className = `banner ${kind}`;
  banner.hidden = false;
}

function fail(err: unknown): void {
  if (isAbort(err)) return;
  if (isAuthError(err)) {
    tokenForm.hidden = false;
    tokenInput.focus();
    showBanner(getToken()
      ? `The server refused the token (${describeError(err)}). Enter another one above.`
      : "This server needs a bearer token: enter it above (it is kept in this browser).", "auth");
  } else {
    showBanner(describeError(err), "error");
  }
}

function route(): void {
  current?.abort();
  current = new AbortController();
  banner.hidden = true;
  const parts = (location.hash.replace(/^#\/?/, "") || "jobs").split("/").map(decodeURIComponent);
  let name = parts[0] ?? "jobs";
  if (name === "jobs" && parts.length > 1) name = "job";
  const page = routes[name] ?? jobs;
  for (const a of document.querySelectorAll<HTMLAnchorElement>("#nav a")) {
    a.classList.toggle("active", a.dataset.page === (name === "job" ? "jobs" : name));
  }
  pageEl.replaceChildren();
  pageEl.dataset.page = name;
  const ctx: PageContext = { root: pageEl, params: parts.slice(1), signal: current.signal, fail };
  Promise.resolve(page.render(ctx)).catch(fail);
}

tokenInput.value = getToken();
document.getElementById("token-toggle")!.addEventListener("click", () => {
  tokenForm.hidden = !tokenForm.hidden;
  if (!tokenForm.hidden) tokenInput.focus();
});
tokenForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  setToken(tokenInput.value.trim());
  tokenForm.hidden = true;
  route();
});

window.addEventListener("hashchange", route);
route();
