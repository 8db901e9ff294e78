"""An AI report pipeline as a ContinuableJob: extract, summarise, format, deliver.

The slow part is `summarise`, one (stand-in) model call per passage. A model API serves many
requests at once, so the calls go 8 at a time (`amap`, in an async job): 8 times faster than
one by one, and still resumable passage by passage. An interruption (a deploy, a drain, a
preemption) lets the calls in flight finish, and a new attempt skips `extract` and summarises
only the passages not done yet, whatever order they finished in. `deliver` sends the report
and must never send it twice, so it is marked `idempotent=False`.

    python examples/ai-report/job.py          # Ctrl-C half way, then run it again: it resumes

Settings come from the environment (see README.md): CHUNK_SECONDS, CONCURRENCY, DOCUMENTS_DIR,
WORK_DIR, REPORT_PATH.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import continuable

HERE = Path(__file__).resolve().parent
Model = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class Settings:
    documents: Path
    work_dir: Path
    report_path: Path
    chunk_seconds: float = 0.05
    concurrency: int = 8
    recipient: str = "leadership@example.com"

    @classmethod
    def from_environment(cls) -> Settings:
        # Per job, so two runs of the example never share intermediate files.
        scratch = Path("/tmp/continuable-examples/ai-report") / os.environ.get(
            "CONTINUABLE_JOB", "local"
        )
        return cls(
            documents=Path(os.environ.get("DOCUMENTS_DIR", HERE / "documents")),
            work_dir=Path(os.environ.get("WORK_DIR", scratch)),
            report_path=Path(os.environ.get("REPORT_PATH", scratch / "report.md")),
            chunk_seconds=float(os.environ.get("CHUNK_SECONDS", "0.05")),
            concurrency=int(os.environ.get("CONCURRENCY", "8")),
        )


async def stand_in_model(text: str, *, seconds: float) -> str:
    """Stands in for a language model's API: slow, and answers with a one-sentence summary."""
    await asyncio.sleep(seconds)
    first_sentence = text.split(". ")[0].rstrip(".")
    words = first_sentence.split()
    return " ".join(words[:20]) + (" ..." if len(words) > 20 else ".")


async def ai_report(
    job: continuable.Job, settings: Settings | None = None, model: Model | None = None
) -> None:
    settings = settings or Settings.from_environment()
    summarise_text = model or (lambda text: stand_in_model(text, seconds=settings.chunk_seconds))
    summaries = settings.work_dir / "summaries"

    @job.step
    async def extract(step: continuable.AsyncStep) -> list[dict[str, str]]:
        """The documents' text, one chunk per paragraph (a PDF or HTML parser in real life).
        The result is saved with the job, so a resumed attempt does not extract again."""
        chunks = []
        for path in sorted(settings.documents.glob("*.txt")):
            paragraphs = [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
            title, *body = (" ".join(p.split()) for p in paragraphs)
            chunks += [{"document": path.stem, "title": title, "text": text} for text in body]
        print(f"extracted {len(chunks)} passages from {settings.documents}", flush=True)
        return chunks

    chunks: list[dict[str, str]] = await extract

    @job.step
    async def summarise(step: continuable.AsyncStep) -> dict[str, Any]:
        """One model call per passage, `concurrency` at a time. Each summary goes to the work
        folder (your own storage: a bucket, a volume) before its passage counts as done; the
        cursor records every passage done, in whatever order the calls return."""
        summaries.mkdir(parents=True, exist_ok=True)
        if step.resumed:
            print(f"resuming with the passages done so far: {step.cursor}", flush=True)

        async def summarise_passage(i: int) -> None:
            write_atomically(summaries / f"{i:04d}.txt", await summarise_text(chunks[i]["text"]))

        await step.amap(summarise_passage, range(len(chunks)), concurrency=settings.concurrency)
        return {"folder": str(summaries), "count": len(chunks)}

    await summarise

    async def format_report(step: continuable.AsyncStep) -> str:
        """The summaries as a Markdown report, one section per document."""
        lines = ["# Document digest", ""]
        documents = len({chunk["document"] for chunk in chunks})
        lines.append(f"{len(chunks)} passages from {documents} documents.")
        title = None
        for i, chunk in enumerate(chunks):
            if chunk["title"] != title:
                title = chunk["title"]
                lines += ["", f"## {title}", ""]
            lines.append(f"- {(summaries / f'{i:04d}.txt').read_text(encoding='utf-8')}")
        return "\n".join(lines) + "\n"

    # `format` would shadow the builtin, so this step is registered by name.
    report: str = await job.step("format", format_report)

    @job.step(idempotent=False)
    async def deliver(step: continuable.AsyncStep) -> dict[str, Any]:
        """Sends the report (here: writes it and records the sending in an outbox). A side
        effect that must not happen twice: if an attempt dies inside this step, the job stops
        with StepNotReplayable and a person decides (`continuable restart --from-step`)."""
        write_atomically(settings.report_path, report)
        digest = hashlib.sha256(report.encode()).hexdigest()
        with (settings.work_dir / "outbox.log").open("a", encoding="utf-8") as outbox:
            outbox.write(f"sent {settings.report_path} sha256={digest} to {settings.recipient}\n")
        print(f"delivered {settings.report_path} to {settings.recipient}", flush=True)
        return {"path": str(settings.report_path), "bytes": len(report.encode()), "sha256": digest}

    await deliver


def write_atomically(path: Path, text: str) -> None:
    """Write-then-rename: a passage summarised twice (after a SIGKILL) is simply overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


async def run() -> None:
    async with continuable.Job() as job:
        await ai_report(job)


def main() -> None:
    # Both examples' scripts are named job.py: give this one its own local state file.
    os.environ.setdefault("CONTINUABLE_STATE_FILE", ".continuable/ai-report.json")
    asyncio.run(run())


if __name__ == "__main__":
    main()
