// A small "tutor" agent in TypeScript: it answers simple arithmetic questions, gives hints, and streams a
// step-by-step explanation.
//   node examples/typescript/dist/tutor/agent.js        (SUTRADHAR_INSECURE=1 for a development mesh)
// Tasks: type "answer" or "hint" (or empty: "answer"), payload {"question": "12 * 7"}.
import { Agent, Progress, TaskFailed, serve, type Json, type StreamItem, type Task } from "@sutradhar/sdk";

const QUESTION = /^\s*(-?\d+(?:\.\d+)?)\s*([-+*/])\s*(-?\d+(?:\.\d+)?)\s*$/;
const NAMES: Record<string, string> = { "+": "add", "-": "subtract", "*": "multiply", "/": "divide" };

interface Question {
  left: number;
  op: string;
  right: number;
}

function question(task: Task): Question {
  const payload = task.payload;
  const text = payload !== null && typeof payload === "object" && !Array.isArray(payload) ? payload.question : undefined;
  const match = typeof text === "string" ? QUESTION.exec(text) : null;
  if (!match) {
    throw new TaskFailed("INVALID_INPUT", 'payload.question must be "<number> <+|-|*|/> <number>", e.g. "12 * 7"');
  }
  return { left: Number(match[1]), op: match[2] as string, right: Number(match[3]) };
}

function solve({ left, op, right }: Question): number {
  if (op === "/" && right === 0) throw new TaskFailed("INVALID_INPUT", "division by zero has no answer");
  return op === "+" ? left + right : op === "-" ? left - right : op === "*" ? left * right : left / right;
}

export class TutorAgent extends Agent {
  override id = "tutor";
  override type = "tutor";
  override version = "1.0.0";
  override capabilities = ["answer", "hint"];
  override taskTypes = ["answer", "hint"];
  override description = "Answers simple arithmetic questions, gives hints, streams explanations.";
  private answered = 0;

  override async execute(task: Task): Promise<Json> {
    const q = question(task);
    if (task.type === "hint") return { hint: `${NAMES[q.op]} ${q.left} and ${q.right}` };
    this.answered += 1;
    return { answer: solve(q) };
  }

  override async *stream(task: Task): AsyncGenerator<StreamItem, Json, undefined> {
    const q = question(task);
    const steps = [`We ${NAMES[q.op]} ${q.left} and ${q.right}.`, `${q.left} ${q.op} ${q.right} = ${solve(q)}.`];
    for (const [i, step] of steps.entries()) {
      yield new Progress(`step ${i + 1}/${steps.length}`, (i + 1) / steps.length);
      yield step;
    }
    this.answered += 1;
    return { answer: solve(q), steps: steps.length };
  }

  override customMetrics(): Record<string, number> {
    return { answered: this.answered };
  }
}

await serve(new TutorAgent());
