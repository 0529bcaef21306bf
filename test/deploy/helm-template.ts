// A small renderer of Go templates as Helm runs them, for the part of the language the chart uses: actions
// with `{{-`/`-}}` trimming, if/else if/else, range, with, define/include, pipelines, and the few Sprig
// functions listed in `functions`. Helm is not installed here; this lets the tests render the chart with
// any values and read the manifests it would apply. Anything outside that part (a variable, an unknown
// function) throws, so that a template the renderer cannot read fails a test instead of passing unread.
import { stringify as toYamlText } from "yaml";

/** What `.` is at the top of a template: Helm's built-in objects, the few the chart reads. */
export interface HelmRoot {
  readonly Values: unknown;
  readonly Release: { readonly Name: string; readonly Namespace: string; readonly Service: string };
  readonly Chart: { readonly Name: string; readonly Version: string; readonly AppVersion: string };
}

/** A `fail` in a template: Helm stops the install with this message. */
export class TemplateFailure extends Error {
  override name = "TemplateFailure";
}

type Node =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "output"; readonly pipeline: string }
  | { readonly kind: "if"; readonly branches: { readonly condition: string; readonly body: Node[] }[]; readonly otherwise: Node[] }
  | { readonly kind: "range" | "with"; readonly pipeline: string; readonly body: Node[]; readonly otherwise: Node[] };

/** Go's integers (from `int`, `int64`, `div`, ...) as bigint; values read from YAML stay float64 numbers, as in Helm. */
type Value = unknown;

interface Token {
  readonly text: string;
  readonly trimLeft: boolean;
  readonly trimRight: boolean;
}

/** The parsed chart: every file's nodes and every `define`. */
export class Templates {
  private readonly defines = new Map<string, Node[]>();
  private readonly files = new Map<string, Node[]>();

  constructor(files: readonly { file: string; text: string }[]) {
    for (const { file, text } of files) this.files.set(file, this.parse(text, file));
  }

  /** The output of template `file` with `root` as `.`. */
  render(file: string, root: HelmRoot): string {
    const nodes = this.files.get(file);
    if (nodes === undefined) throw new Error(`no template ${file}`);
    return this.renderNodes(nodes, root, root);
  }

  /** What `include "<name>" .` gives. */
  include(name: string, dot: Value, root: HelmRoot): string {
    const nodes = this.defines.get(name);
    if (nodes === undefined) throw new Error(`include of an undefined template "${name}"`);
    return this.renderNodes(nodes, dot, root);
  }

  private parse(text: string, file: string): Node[] {
    const pieces: (string | Token)[] = [];
    const actionPattern = /\{\{(- )?([\s\S]*?)( -)?\}\}/g;
    let last = 0;
    for (const match of text.matchAll(actionPattern)) {
      pieces.push(text.slice(last, match.index));
      pieces.push({ text: match[2]!.trim(), trimLeft: match[1] !== undefined, trimRight: match[3] !== undefined });
      last = match.index + match[0].length;
    }
    pieces.push(text.slice(last));
    // Trimming: `{{- ` drops the whitespace before the action, ` -}}` the whitespace after it.
    for (let index = 0; index < pieces.length; index++) {
      const piece = pieces[index]!;
      if (typeof piece === "string") continue;
      if (piece.trimLeft) pieces[index - 1] = (pieces[index - 1] as string).replace(/\s+$/, "");
      if (piece.trimRight) pieces[index + 1] = (pieces[index + 1] as string).replace(/^\s+/, "");
    }
    let position = 0;
    const parseUntil = (closers: readonly string[]): { nodes: Node[]; closer: string } => {
      const nodes: Node[] = [];
      while (position < pieces.length) {
        const piece = pieces[position++]!;
        if (typeof piece === "string") {
          if (piece !== "") nodes.push({ kind: "text", text: piece });
          continue;
        }
        const action = piece.text;
        if (action.startsWith("/*")) continue;
        const keyword = /^(if|else if|else|end|range|with|define)\b\s*([\s\S]*)$/.exec(action);
        if (keyword === null) {
          nodes.push({ kind: "output", pipeline: action });
          continue;
        }
        const [, word, rest] = keyword as unknown as [string, string, string];
        if (closers.includes(word)) {
          position--;
          return { nodes, closer: word };
        }
        if (word === "if") {
          const branches: { condition: string; body: Node[] }[] = [];
          let condition = rest;
          let otherwise: Node[] = [];
          for (;;) {
            const { nodes: body, closer } = parseUntil(["else if", "else", "end"]);
            branches.push({ condition, body });
            const closing = pieces[position++] as Token;
            if (closer === "end") break;
            if (closer === "else if") {
              condition = /^else if\s+([\s\S]*)$/.exec(closing.text)![1]!;
              continue;
            }
            otherwise = parseUntil(["end"]).nodes;
            position++;
            break;
          }
          nodes.push({ kind: "if", branches, otherwise });
        } else if (word === "range" || word === "with") {
          const { nodes: body, closer } = parseUntil(["else", "end"]);
          position++;
          let otherwise: Node[] = [];
          if (closer === "else") {
            otherwise = parseUntil(["end"]).nodes;
            position++;
          }
          nodes.push({ kind: word, pipeline: rest, body, otherwise });
        } else if (word === "define") {
          const name = /^"([^"]+)"$/.exec(rest)?.[1];
          if (name === undefined) throw new Error(`${file}: define needs a quoted name: {{ ${action} }}`);
          this.defines.set(name, parseUntil(["end"]).nodes);
          position++;
        } else {
          throw new Error(`${file}: {{ ${action} }} without the action it closes`);
        }
      }
      if (closers.length > 0) throw new Error(`${file}: missing {{ end }}`);
      return { nodes, closer: "" };
    };
    return parseUntil([]).nodes;
  }

  private renderNodes(nodes: readonly Node[], dot: Value, root: HelmRoot): string {
    let output = "";
    for (const node of nodes) {
      switch (node.kind) {
        case "text":
          output += node.text;
          break;
        case "output":
          output += printed(this.evaluate(node.pipeline, dot, root));
          break;
        case "if": {
          const branch = node.branches.find(({ condition }) => truthy(this.evaluate(condition, dot, root)));
          output += this.renderNodes(branch?.body ?? node.otherwise, dot, root);
          break;
        }
        case "with": {
          const value = this.evaluate(node.pipeline, dot, root);
          output += truthy(value) ? this.renderNodes(node.body, value, root) : this.renderNodes(node.otherwise, dot, root);
          break;
        }
        case "range": {
          const value = this.evaluate(node.pipeline, dot, root);
          const items = Array.isArray(value) ? value : isRecord(value) ? Object.keys(value).sort().map((key) => value[key]) : [];
          if (items.length === 0) output += this.renderNodes(node.otherwise, dot, root);
          for (const item of items) output += this.renderNodes(node.body, item, root);
          break;
        }
      }
    }
    return output;
  }

  /** A pipeline: commands separated by `|`, each one's result the last argument of the next. */
  private evaluate(pipeline: string, dot: Value, root: HelmRoot): Value {
    const tokens = tokenize(pipeline);
    let position = 0;
    const parsePipeline = (): Value => {
      let value: Value;
      let piped = false;
      for (;;) {
        value = parseCommand(piped ? [value] : []);
        piped = true;
        if (tokens[position] === "|") {
          position++;
          continue;
        }
        return value;
      }
    };
    const parseOperand = (): { value: Value; functionName?: string } => {
      const token = tokens[position++];
      if (token === undefined) throw new Error(`incomplete expression: {{ ${pipeline} }}`);
      if (token === "(") {
        const value = parsePipeline();
        if (tokens[position++] !== ")") throw new Error(`unbalanced parentheses: {{ ${pipeline} }}`);
        return { value };
      }
      if (token.startsWith('"')) return { value: JSON.parse(token) as string };
      if (/^-?\d+$/.test(token)) return { value: BigInt(token) };
      if (token === "true" || token === "false") return { value: token === "true" };
      if (token === ".") return { value: dot };
      if (token.startsWith(".")) return { value: fieldOf(dot, token.slice(1).split("."), pipeline) };
      if (token.startsWith("$")) throw new Error(`variables are not supported here: {{ ${pipeline} }}`);
      if (token in functions || token === "include" || token === "fail") return { value: undefined, functionName: token };
      throw new Error(`unknown function "${token}" in {{ ${pipeline} }}`);
    };
    const parseCommand = (pipedValue: Value[]): Value => {
      const first = parseOperand();
      const args: Value[] = [];
      while (position < tokens.length && tokens[position] !== "|" && tokens[position] !== ")") {
        const operand = parseOperand();
        if (operand.functionName !== undefined) throw new Error(`a function as an argument needs parentheses: {{ ${pipeline} }}`);
        args.push(operand.value);
      }
      if (first.functionName === undefined) {
        if (args.length > 0 || pipedValue.length > 0) throw new Error(`a value cannot take arguments: {{ ${pipeline} }}`);
        return first.value;
      }
      const all = [...args, ...pipedValue];
      if (first.functionName === "include") return this.include(String(all[0]), all[1], root);
      if (first.functionName === "fail") throw new TemplateFailure(String(all[0]));
      return functions[first.functionName]!(...all);
    };
    const value = parsePipeline();
    if (position !== tokens.length) throw new Error(`unexpected "${tokens[position]}" in {{ ${pipeline} }}`);
    return value;
  }
}

function tokenize(pipeline: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s*("(?:[^"\\]|\\.)*"|\(|\)|\||[^\s()|]+)/gy;
  for (let match = pattern.exec(pipeline); match !== null; match = pattern.exec(pipeline)) tokens.push(match[1]!);
  if (tokens.join("").replace(/\s/g, "") !== pipeline.replace(/\s/g, "")) throw new Error(`cannot read {{ ${pipeline} }}`);
  return tokens;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `.a.b` of `value`: a missing map key is nil (Helm prints it as an empty string). */
function fieldOf(value: Value, keys: readonly string[], pipeline: string): Value {
  let current = value;
  for (const key of keys) {
    if (current === undefined || current === null) return undefined;
    if (!isRecord(current)) throw new Error(`cannot read field ${key} of ${JSON.stringify(current)} in {{ ${pipeline} }}`);
    current = current[key];
  }
  return current;
}

/** Go templates' truth: false, 0, nil and empty strings, lists and maps are false. */
function truthy(value: Value): boolean {
  if (value === undefined || value === null || value === false || value === "" || value === 0 || value === 0n) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return true;
}

/** How `{{ value }}` prints: a float64 as Go's %v does (1000000 is "1e+06"), nil as nothing. */
function printed(value: Value): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "number") return goFloat(value);
  if (typeof value === "string" || typeof value === "bigint" || typeof value === "boolean") return String(value);
  throw new Error(`cannot print ${JSON.stringify(value)}; use toYaml`);
}

function goFloat(value: number): string {
  if (value === 0 || !Number.isFinite(value)) return String(value);
  const exponent = Math.floor(Math.log10(Math.abs(value)));
  // Go's %v of a float64 is %g with the shortest digits: an exponent below -4 or from 6 up prints as 1e+06.
  if (exponent < -4 || exponent >= 6) {
    const [mantissa, power] = value.toExponential().split("e") as [string, string];
    const sign = power.startsWith("-") ? "-" : "+";
    return `${mantissa}e${sign}${power.replace(/^[+-]/, "").padStart(2, "0")}`;
  }
  return String(value);
}

function toInteger(value: Value): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return BigInt(Math.trunc(value));
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value);
  if (value === undefined || value === null) return 0n;
  throw new Error(`not a number: ${JSON.stringify(value)}`);
}

function numeric(value: Value): number {
  return typeof value === "bigint" ? Number(value) : Number(value);
}

function printf(format: string, ...args: Value[]): string {
  let next = 0;
  return format.replace(/%([sdv%])/g, (_match, verb: string) => {
    if (verb === "%") return "%";
    const value = args[next++];
    return verb === "d" ? String(toInteger(value)) : printed(value);
  });
}

/** The Sprig and built-in functions the chart calls, with Helm's argument order (a piped value comes last). */
const functions: Record<string, (...args: Value[]) => Value> = {
  not: (value) => !truthy(value),
  and: (...values) => values.find((value) => !truthy(value)) ?? values.at(-1),
  or: (...values) => values.find((value) => truthy(value)) ?? values.at(-1),
  eq: (a, b) => (typeof a === "bigint" || typeof b === "bigint" ? numeric(a) === numeric(b) : a === b),
  lt: (a, b) => numeric(a) < numeric(b),
  int: (value) => toInteger(value),
  int64: (value) => toInteger(value),
  div: (a, b) => toInteger(a) / toInteger(b),
  printf: (format, ...args) => printf(String(format), ...args),
  default: (fallback, value) => (truthy(value) ? value : fallback),
  quote: (value) => JSON.stringify(printed(value)),
  b64enc: (value) => Buffer.from(String(value), "utf8").toString("base64"),
  contains: (needle, haystack) => String(haystack).includes(String(needle)),
  trunc: (length, value) => String(value).slice(0, Number(toInteger(length))),
  trimSuffix: (suffix, value) => (String(value).endsWith(String(suffix)) ? String(value).slice(0, -String(suffix).length) : String(value)),
  toYaml: (value) => toYamlText(value, { lineWidth: 0 }).replace(/\n$/, ""),
  nindent: (width, text) => `\n${indentLines(String(text), Number(toInteger(width)))}`,
};

function indentLines(text: string, width: number): string {
  const pad = " ".repeat(width);
  return text
    .split("\n")
    .map((line) => pad + line)
    .join("\n");
}
