"""The `continuable` command (and the kubectl plugin `kubectl continuable`), built with typer.

Each command reads what it needs through the `Cluster` seam, decides with the pure functions of
`selecting`, `rendering`, `restarting` and `interrupting`, and prints. `make_app` takes the
seam's factory, so the unit tests drive the real commands against a fake cluster.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from continuable import __version__
from continuable.names import DISRUPTION_TARGET

from . import interrupting, rendering, restarting, selecting
from .cluster import Cluster, Connect, ConnectOptions, connect_kubernetes
from .errors import ApiError, CliError, job_lookup_error, pod_gone_error

EXIT_FAILED = 1
PIPE_WIDTH = 160
# What a shell reports for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


class Output(StrEnum):
    table = "table"
    json = "json"


@dataclass(frozen=True)
class Options:
    """The global options, given before or after the command (`-n` works in both places)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    output: Output | None = None

    def over(self, base: Options) -> Options:
        """These options where given, `base`'s elsewhere."""
        return replace(
            base,
            **{k: v for k, v in vars(self).items() if v is not None},
        )


KubeconfigOption = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig",
        metavar="PATH",
        help="Path to the kubeconfig (default: KUBECONFIG, ~/.kube/config).",
    ),
]
ContextOption = Annotated[
    str | None, typer.Option("--context", metavar="NAME", help="The kubeconfig context to use.")
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "-n",
        "--namespace",
        metavar="NAMESPACE",
        help="The job's namespace (default: the context's).",
    ),
]
OutputOption = Annotated[
    Output | None,
    typer.Option("-o", "--output", help="table for people, json for scripts.", show_default=False),
]
JobArgument = Annotated[
    str, typer.Argument(metavar="JOB", help="The ContinuableJob: NAME or cjob/NAME.")
]


def print_version(value: bool) -> None:
    if value:
        typer.echo(f"continuable {__version__}")
        raise typer.Exit(0)


@dataclass
class Session:
    """A command's cluster and namespace, connected on first use."""

    options: Options
    connect: Connect
    _cluster: Cluster | None = None

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = self.connect(
                ConnectOptions(kubeconfig=self.options.kubeconfig, context=self.options.context)
            )
        return self._cluster

    @property
    def namespace(self) -> str:
        return self.options.namespace or self.cluster.default_namespace

    @property
    def output(self) -> Output:
        return self.options.output or Output.table

    def job(self, reference: str) -> dict[str, Any]:
        name = selecting.job_name(reference)
        namespace = self.namespace
        try:
            return self.cluster.get_job(namespace, name)
        except ApiError as err:
            raise job_lookup_error(err, name=name, namespace=namespace) from err


@contextmanager
def reporting(stderr: Console) -> Iterator[None]:
    """Turns a CliError into `error: ...` and exit 1, and Ctrl-C into a quiet exit 130."""
    try:
        yield
    except CliError as err:
        stderr.print(f"[bold red]error:[/] {err.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def make_app(
    connect: Connect = connect_kubernetes,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> typer.Typer:
    """The CLI, talking to the clusters `connect` opens."""
    app = typer.Typer(
        name="continuable",
        help="Inspect and steer ContinuableJobs: resumable, checkpointed batch jobs.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )

    def session(ctx: typer.Context, given: Options) -> Session:
        base = ctx.obj if isinstance(ctx.obj, Options) else Options()
        return Session(given.over(base), connect)

    def stdout() -> Console:
        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            # A file or a pipe has no width to fit: do not cut the tables at rich's 80.
            console.width = PIPE_WIDTH
        return console

    def stderr() -> Console:
        return Console(stderr=True, highlight=False)

    @app.callback()
    def main_options(
        ctx: typer.Context,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        namespace: NamespaceOption = None,
        output: OutputOption = None,
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                help="Print the version and exit.",
                is_eager=True,
                callback=print_version,
            ),
        ] = False,
    ) -> None:
        ctx.obj = Options(kubeconfig, context, namespace, output)

    @app.command()
    def status(
        ctx: typer.Context,
        job: JobArgument,
        watch: Annotated[
            bool,
            typer.Option(
                "-w",
                "--watch",
                help="Keep showing the status until the job ends; exit 0 if it succeeded, "
                "1 if it failed.",
            ),
        ] = False,
        interval: Annotated[
            float,
            typer.Option("--interval", min=0.1, help="Seconds between two reads with --watch."),
        ] = 1.0,
        namespace: NamespaceOption = None,
        output: OutputOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
    ) -> None:
        """Steps (state, cursor, duration), progress, attempts, counters and conditions."""
        err = stderr()
        with reporting(err):
            here = session(ctx, Options(kubeconfig, context, namespace, output))
            document = here.job(job)
            if not watch:
                _show(document, here.output, stdout(), clock())
                return
            finished = _watch(here, job, document, interval=interval, sleep=sleep, clock=clock)
            if selecting.status_of(finished).get("phase") == "Failed":
                raise typer.Exit(EXIT_FAILED)

    @app.command()
    def interrupt(
        ctx: typer.Context,
        job: JobArgument,
        grace_period: Annotated[
            int | None,
            typer.Option(
                "--grace-period",
                min=1,
                help="Seconds the pod gets to save its cursor and exit (default: the pod's "
                "terminationGracePeriodSeconds).",
            ),
        ] = None,
        namespace: NamespaceOption = None,
        output: OutputOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
    ) -> None:
        """Stop the job's pod gracefully so the operator relaunches it from its checkpoint.

        The pod gets the condition DisruptionTarget (reason ManualInterruption), then is
        deleted: it receives SIGTERM, saves its cursor and exits 75. Use it to try the resume
        path of a job, as you would send SIGTERM to a worker in staging.
        """
        with reporting(stderr()):
            here = session(ctx, Options(kubeconfig, context, namespace, output))
            document = here.job(job)
            name, ns = document["metadata"]["name"], here.namespace
            pods = here.cluster.list_job_pods(ns, name)
            pod = selecting.pod_to_interrupt(document, pods)
            pod_name = pod["metadata"]["name"]
            patch = interrupting.disruption_patch(requester=interrupting.requested_by())
            try:
                here.cluster.patch_pod_status(ns, pod_name, patch)
            except ApiError as err:
                if err.status == 403:
                    raise CliError(
                        f"not allowed to patch pods/status in namespace {ns} ({err.message}); "
                        "the interruption needs `patch` on `pods/status` to record its reason. "
                        f"Without it, `kubectl delete pod {pod_name} -n {ns}` also interrupts, "
                        "with no recorded reason"
                    ) from err
                raise pod_gone_error(err, pod=pod_name, namespace=ns, what="mark") from err
            try:
                here.cluster.delete_pod(
                    ns,
                    pod_name,
                    uid=pod["metadata"].get("uid"),
                    grace_period_seconds=grace_period,
                )
            except ApiError as err:
                raise pod_gone_error(err, pod=pod_name, namespace=ns, what="delete") from err
            checkpoint = selecting.checkpoint_of(document)
            attempt = selecting.attempt_of(pod)
            if here.output is Output.json:
                condition = patch["status"]["conditions"][0]
                typer.echo(
                    json.dumps(
                        {"job": name, "namespace": ns, "pod": pod_name, "attempt": attempt}
                        | {"condition": condition}
                    )
                )
                return
            where = ""
            if checkpoint.get("currentStep"):
                cursor = rendering.format_cursor(_cursor_of(checkpoint))
                where = f" (step {checkpoint['currentStep']}, last saved cursor {cursor})"
            typer.echo(
                f"Interrupted {name}: pod {pod_name} (attempt {attempt}) is marked "
                f"{DISRUPTION_TARGET}/{interrupting.MANUAL_INTERRUPTION} and "
                f"stopping gracefully. The operator resumes the job from its checkpoint{where} "
                f"in a new attempt; follow it with `continuable status {name} -w`."
            )

    @app.command()
    def restart(
        ctx: typer.Context,
        job: JobArgument,
        from_step: Annotated[
            str | None,
            typer.Option(
                "--from-step",
                metavar="NAME",
                help="Run again from this step on (its checkpoint and results, and those of "
                "the steps after it, are dropped). Default: from the first step.",
            ),
        ] = None,
        yes: Annotated[bool, typer.Option("-y", "--yes", help="Do not ask for confirmation.")] = (
            False
        ),
        namespace: NamespaceOption = None,
        output: OutputOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
    ) -> None:
        """Ask the operator to run the job again from a step (after asking you to confirm).

        Completed steps before it are kept. This is also how a job that failed with
        StepNotReplayable is run again, once you have checked the step's side effect.
        """
        with reporting(stderr()):
            here = session(ctx, Options(kubeconfig, context, namespace, output))
            document = here.job(job)
            name, ns = document["metadata"]["name"], here.namespace
            plan = restarting.plan_restart(document, from_step)
            out = stdout()
            if not yes:
                out.print(plan.describe(ns))
                try:
                    confirmed = typer.confirm("Proceed?", default=False)
                except typer.Abort:
                    confirmed = False
                if not confirmed:
                    raise CliError(
                        "restart not confirmed; nothing changed (--yes skips the question)"
                    )
            nonce = restarting.new_nonce()
            try:
                here.cluster.patch_job(ns, name, plan.patch(nonce))
            except ApiError as err:
                raise job_lookup_error(err, name=name, namespace=ns) from err
            if here.output is Output.json:
                request = {"job": name, "namespace": ns, "fromStep": plan.from_step}
                request |= {"nonce": nonce, "kept": plan.kept, "rerun": plan.rerun}
                typer.echo(json.dumps(request))
                return
            start = "its first step" if plan.from_step == "*" else f"step {plan.from_step}"
            typer.echo(
                f"Restart of {name} from {start} requested; the operator resets the checkpoint "
                f"and starts a new attempt. Follow it with `continuable status {name} -w`."
            )

    @app.command()
    def logs(
        ctx: typer.Context,
        job: JobArgument,
        follow: Annotated[
            bool, typer.Option("-f", "--follow", help="Stream the log until the pod ends.")
        ] = False,
        attempt: Annotated[
            int | None,
            typer.Option("--attempt", min=1, help="The attempt's pod (default: the current one)."),
        ] = None,
        tail: Annotated[
            int | None, typer.Option("--tail", min=0, help="Only the last N lines.")
        ] = None,
        container: Annotated[
            str | None,
            typer.Option("-c", "--container", help="Container (default: the job's, the first)."),
        ] = None,
        namespace: NamespaceOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
    ) -> None:
        """The log of the job's current pod, or of a given attempt's pod."""
        with reporting(stderr()):
            here = session(ctx, Options(kubeconfig, context, namespace))
            document = here.job(job)
            name, ns = document["metadata"]["name"], here.namespace
            pods = here.cluster.list_job_pods(ns, name)
            pod_name = selecting.pod_for_logs(document, pods, attempt)
            listed = [p for p in pods if p.get("metadata", {}).get("name") == pod_name]
            chosen = container or (selecting.job_container(listed[0]) if listed else None)
            try:
                for text in here.cluster.pod_log(
                    ns, pod_name, container=chosen, follow=follow, tail_lines=tail
                ):
                    sys.stdout.write(text)
                    sys.stdout.flush()
            except ApiError as err:
                raise pod_gone_error(
                    err,
                    pod=pod_name,
                    namespace=ns,
                    what="read the log of",
                    why="an interrupted attempt's pod is deleted, and its log with it",
                ) from err

    return app


def _cursor_of(checkpoint: dict[str, Any]) -> Any:
    for step in checkpoint.get("steps") or []:
        if step.get("name") == checkpoint.get("currentStep"):
            return step.get("cursor")
    return None


def _show(job: dict[str, Any], output: Output, console: Console, now: datetime) -> None:
    if output is Output.json:
        typer.echo(rendering.status_json(job))
    else:
        console.print(rendering.render_status(job, now=now, bar=console.is_terminal))


def _watch(
    here: Session,
    reference: str,
    job: dict[str, Any],
    *,
    interval: float,
    sleep: Callable[[float], None],
    clock: Callable[[], datetime],
) -> dict[str, Any]:
    """Show `job` again after every read until it ends; returns the last version read."""
    console = Console(highlight=False)

    def again() -> dict[str, Any]:
        sleep(interval)
        return here.job(reference)

    if here.output is Output.table and console.is_terminal:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                live.update(rendering.render_status(job, now=clock(), bar=True), refresh=True)
                if rendering.is_finished(job):
                    return job
                job = again()
    last = None
    while True:
        if here.output is Output.json:
            line = json.dumps(selecting.status_of(job), separators=(",", ":"))
        else:
            line = rendering.status_line(job)
        if line != last:
            typer.echo(line)
            last = line
        if rendering.is_finished(job):
            return job
        job = again()


def main() -> None:
    """The `continuable` console script."""
    make_app()(prog_name="continuable")


def kubectl_main() -> None:
    """The `kubectl-continuable` console script: kubectl runs it as `kubectl continuable`."""
    make_app()(prog_name="kubectl continuable")
