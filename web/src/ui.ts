// Small DOM helpers shared by the pages.

type Attrs = Record<string, string | number | boolean | undefined | ((ev: Event) => void)>;
type Child = Node | string | number | null | undefined | false;

// h("button", {class: "primary", onclick: f}, "Run") -> <button class="primary">Run</button>
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") {
      el.addEventListener(key.replace(/^on/, ""), value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// A labelled form field.
export function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", {}, label), input,
    hint ? h("small", {}, hint) : null);
}

export function numberInput(id: string, value: number, attrs: Attrs = {}): HTMLInputElement {
  return h("input", { id, type: "number", value, ...attrs });
}

export function select(id: string, options: [string, string][], value?: string): HTMLSelectElement {
  const el = h("select", { id }, ...options.map(([v, text]) => h("option", { value: v }, text)));
  if (value !== undefined) el.value = value;
  return el;
}

export function fmt(x: number, digits = 3): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

export function pct(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "–";
}

// 0.0316 -> "3.16e-2", 1 -> "1.00e0"
export function sci(x: number): string {
  return x.toExponential(2).replace("e+", "e");
}

// An error line inside a page (the banner is for auth).
export function errorBox(text: string): HTMLElement {
  return h("div", { class: "error" }, text);
}
