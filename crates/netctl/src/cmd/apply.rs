//! `plan`, `apply` and `destroy`: converge the machine to a file (or away from it).

use std::collections::BTreeSet;

use netctl_plan::render_text;
use serde_json::json;

use crate::Outcome;
use crate::cli::{ApplyArgs, DestroyArgs, PlanArgs};
use crate::cmd::ctx::{Ctx, Surveyed, load_and_survey, load_desired};
use crate::output::Reporter;
use crate::progress::Progress;
use crate::settings::Settings;

pub fn plan(settings: &Settings, args: &PlanArgs, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let s = load_and_survey(settings, &args.file)?;
    let plan = s
        .ctx
        .engine()
        .plan_surveyed(&s.survey, &s.desired, args.prune);
    reporter.result(&render_text(&plan), &plan);
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        Outcome::ChangesPending
    } else {
        Outcome::Success
    })
}

pub fn apply(
    settings: &Settings,
    args: &ApplyArgs,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let started = std::time::Instant::now();
    let Surveyed {
        ctx,
        desired,
        text,
        survey,
    } = load_and_survey(settings, &args.file)?;
    tracing::debug!(elapsed = ?started.elapsed(), "apply: file validated, system surveyed");
    let progress = Progress::new(reporter);
    let step = progress.callback();
    let engine = ctx.engine().with_progress(&step);
    if args.dry_run {
        // Structural dry run: only the planner runs; no executor is built.
        let plan = engine.plan_surveyed(&survey, &desired, args.prune);
        reporter.result(
            &render_text(&plan),
            &json!({ "dry_run": true, "plan": plan }),
        );
        return Ok(Outcome::Success);
    }
    let report = engine.apply_surveyed(survey, &desired, Some((&args.file, &text)), args.prune)?;
    progress.finish();
    tracing::debug!(elapsed = ?started.elapsed(), "apply: done");
    let text = if report.plan.is_empty() {
        render_text(&report.plan)
    } else {
        format!("{}Apply complete.\n", render_text(&report.plan))
    };
    reporter.result(&text, &report);
    Ok(Outcome::Success)
}

pub fn destroy(
    settings: &Settings,
    args: &DestroyArgs,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let only: Option<BTreeSet<String>> = match &args.file {
        Some(file) => {
            let (desired, _) = load_desired(file)?;
            Some(
                desired
                    .networks
                    .keys()
                    .chain(desired.containers.keys())
                    .cloned()
                    .collect(),
            )
        }
        None => None,
    };
    let ctx = Ctx::open(settings)?;
    let progress = Progress::new(reporter);
    let report = ctx
        .engine()
        .with_progress(&progress.callback())
        .destroy(only.as_ref())?;
    progress.finish();
    let text = if report.plan.is_empty() {
        "Nothing to destroy.\n".to_owned()
    } else {
        format!("{}Destroy complete.\n", render_text(&report.plan))
    };
    reporter.result(&text, &report);
    Ok(Outcome::Success)
}
