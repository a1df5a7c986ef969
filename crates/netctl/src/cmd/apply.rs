//! `plan`, `apply` and `destroy`: converge the machine to a file (or away from it).

use std::collections::BTreeSet;

use netctl_plan::render_text;
use serde_json::json;

use crate::Outcome;
use crate::cli::{ApplyArgs, DestroyArgs, PlanArgs};
use crate::cmd::ctx::{Ctx, load_desired};
use crate::output::Reporter;
use crate::settings::Settings;

pub fn plan(settings: &Settings, args: &PlanArgs, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let (desired, _) = load_desired(&args.file)?;
    let ctx = Ctx::open(settings)?;
    let plan = ctx.engine().plan(&desired, args.prune)?;
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
    let (desired, text) = load_desired(&args.file)?;
    tracing::debug!(elapsed = ?started.elapsed(), "apply: file validated");
    let ctx = Ctx::open(settings)?;
    tracing::debug!(elapsed = ?started.elapsed(), "apply: store open");
    let engine = ctx.engine();
    if args.dry_run {
        // Structural dry run: only the planner runs; no executor is built.
        let plan = engine.plan(&desired, args.prune)?;
        reporter.result(
            &render_text(&plan),
            &json!({ "dry_run": true, "plan": plan }),
        );
        return Ok(Outcome::Success);
    }
    let report = engine.apply(&desired, Some((&args.file, &text)), args.prune)?;
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
    let report = ctx.engine().destroy(only.as_ref())?;
    let text = if report.plan.is_empty() {
        "Nothing to destroy.\n".to_owned()
    } else {
        format!("{}Destroy complete.\n", render_text(&report.plan))
    };
    reporter.result(&text, &report);
    Ok(Outcome::Success)
}
