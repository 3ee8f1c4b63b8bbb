"""The local executor: on this machine, each level's ready units as one vectorised program.

Jobs are grouped by level and learning-rate mode (replicates of one program share their
schedule), in the order the driver offers them; a group trains through the engine's front door
with an in-training checkpoint named after its units, so a killed run resumes inside the group.
Stacks that gain nothing from grouping (and `vectorise=False`) train one unit at a time.
"""

from lottery import engine
from lottery.execute.work import Job, Work, group_of
from lottery.seeds import derive


class LocalExecutor:
    name = "local"

    def __init__(self, vectorise: bool = True):
        self.vectorise = vectorise

    def groups(self, jobs: list[Job], work: Work) -> list[list[Job]]:
        by_kind: dict[tuple, list[Job]] = {}
        for job in jobs:
            by_kind.setdefault((job.unit.level, job.lr_mode), []).append(job)
        together = self.vectorise and work.plan.groups
        return [g for group in by_kind.values() for g in ([group] if together else [[j] for j in group])]

    def run(self, work: Work) -> None:
        while True:
            jobs = work.ready()
            if not jobs and not work.wait():
                return
            for group in self.groups(jobs, work):
                self.train(group, work)

    def train(self, jobs: list[Job], work: Work) -> None:
        """One group of jobs, through the engine, each result handed to `work.finish`."""
        first = jobs[0]
        name = f"level_{first.unit.level:02d}-" + derive(0, *[j.unit.key for j in jobs]).to_bytes(8, "big").hex()
        checkpoint = work.checkpoint(name, [j.unit for j in jobs])
        work.reporter.group(work.describe(jobs), work.train_config.total_steps(len(work.train_data.train_x)), len(jobs))
        group = group_of(jobs, work.template, work.train_data, work.train_config, work.augment)
        results = engine.train(group, work.plan, checkpoint=checkpoint, progress=work.reporter.step)
        for job, result in zip(jobs, results):
            work.finish(job, result)
        checkpoint.remove()
        work.reporter.units_done(len(jobs))
