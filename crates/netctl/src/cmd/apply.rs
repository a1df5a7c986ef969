//! `plan`, `apply` and `destroy`: converge the machine to a file (or away from it), within the
//! file's project.

use std::collections::BTreeSet;
use std::io::{BufRead as _, IsTerminal as _, Write as _};

use netctl_engine::PlanExt as _;
use netctl_plan::{Action, Plan, render_text};
use serde_json::json;

use crate::Outcome;
use crate::cli::{ApplyArgs, DestroyArgs, PlanArgs};
use crate::cmd::ctx::{Ctx, Surveyed, load_and_survey, load_desired};
use crate::output::{Reporter, counted};
use crate::progress::Progress;
use crate::settings::Settings;

pub fn plan(settings: &Settings, args: &PlanArgs, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let s = load_and_survey(settings, &args.file, args.project.as_deref())?;
    let plan = s
        .ctx
        .engine()
        .plan_surveyed(&s.survey, &s.desired, args.prune)?
        .refuse_conflicts()?;
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
    } = load_and_survey(settings, &args.file, args.project.as_deref())?;
    tracing::debug!(elapsed = ?started.elapsed(), "apply: file validated, system surveyed");
    let plan = ctx
        .engine()
        .plan_surveyed(&survey, &desired, args.prune)?
        .refuse_conflicts()?;
    if args.dry_run {
        // Structural dry run: only the planner runs; no executor is built.
        reporter.result(
            &render_text(&plan),
            &json!({ "dry_run": true, "plan": plan }),
        );
        return Ok(Outcome::Success);
    }
    if !args.yes {
        confirm_destructive(&plan)?;
    }
    // The bar starts after any question, which it would otherwise draw over.
    let progress = Progress::new(reporter);
    let step = progress.callback();
    let report =
        ctx.engine()
            .with_progress(&step)
            .apply_plan(survey, plan, Some((&args.file, &text)))?;
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

/// On a terminal, a plan that deletes or re-creates something is shown and must be confirmed
/// (`--yes` skips the question; scripts, without a terminal, are never asked).
fn confirm_destructive(plan: &Plan) -> anyhow::Result<()> {
    let destructive = plan
        .steps
        .iter()
        .filter(|s| matches!(s.action, Action::Delete | Action::Replace))
        .count();
    if destructive == 0 || !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(());
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "{}This deletes or re-creates {}. Apply? [y/N] ",
        render_text(plan),
        counted(destructive, "resource", "resources")
    );
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        anyhow::bail!("not applied: the plan was not confirmed (nothing was changed)")
    }
}

pub fn destroy(
    settings: &Settings,
    args: &DestroyArgs,
    reporter: &Reporter,
) -> anyhow::Result<Outcome> {
    let desired = match &args.file {
        Some(file) => Some(load_desired(file, args.project.as_deref())?.0),
        None => None,
    };
    let ctx = Ctx::open(settings)?;
    let engine = ctx.engine();
    // A file's project: everything recorded for it, and what the file names that no project
    // owns yet (records from before projects). Never an external network.
    let only: Option<BTreeSet<String>> = match &desired {
        Some(desired) => {
            let rec = engine.recorded()?;
            let project = desired.project.as_deref();
            let mine = |owner: Option<&str>, declared: bool| {
                owner == project || (owner.is_none() && declared)
            };
            let mut names: BTreeSet<String> = rec
                .networks
                .values()
                .filter(|n| {
                    let declared = desired.networks.get(&n.name).is_some_and(|s| !s.external);
                    mine(n.project.as_deref(), declared)
                })
                .map(|n| n.name.clone())
                .collect();
            names.extend(
                rec.containers
                    .values()
                    .filter(|c| {
                        mine(
                            c.project.as_deref(),
                            desired.containers.contains_key(&c.name),
                        )
                    })
                    .map(|c| c.name.clone()),
            );
            Some(names)
        }
        None => None,
    };
    let progress = Progress::new(reporter);
    let report = engine
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
