"""Every existing annotation of a project, read through Label Studio's API, into the table."""

from __future__ import annotations

from dataclasses import dataclass

from ..labelstudio import LabelStudio
from ..progress import Progress
from .events import events_from_webhook
from .service import Sync


@dataclass
class BackfillReport:
    tasks: int = 0
    annotations: int = 0
    queued: int = 0


def backfill(client: LabelStudio, sync: Sync, project_id: int, progress: bool = True) -> BackfillReport:
    """Queue an upsert for every annotation of ``project_id``; the flusher writes them.

    Running it twice changes nothing: the same annotation gives the same event, and
    an upsert of an unchanged annotation rewrites the same row.
    """
    project = client.project(project_id)
    label_config = project["label_config"]
    report = BackfillReport()
    bar = Progress(f"project {project_id} tasks", project.get("task_number")) if progress else None
    waiting = []
    for task in client.tasks(project_id):
        report.tasks += 1
        for annotation in task.get("annotations") or []:
            report.annotations += 1
            body = {
                "action": "ANNOTATION_CREATED",
                "annotation": annotation,
                "task": {"id": task.get("id"), "data": task.get("data") or {}},
                "project": {"id": project_id, "label_config": label_config},
            }
            waiting.extend(events_from_webhook(body))
        if len(waiting) >= 500:
            report.queued += sync.outbox.add(waiting)
            waiting = []
        if bar:
            bar.advance()
    report.queued += sync.outbox.add(waiting)
    if bar:
        bar.finish()
    return report
