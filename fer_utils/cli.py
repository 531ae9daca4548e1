"""``python -m fer_utils``: the pipeline's steps from the command line.

Every sub-command takes ``--preset`` (quick, default, paper or a YAML path) and any number of
``--set section.key=value`` overrides, so a shell user runs exactly what a notebook runs.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from .benchmarks import available as available_benchmarks
from .config import EXECUTORS, EXPERIMENTS, PRESETS, Config, InputError, load_config, parse_override


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1, refused by argparse with the value named otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def _config(args: argparse.Namespace) -> Config:
    """Build the run's config from ``--preset`` and ``--set`` flags."""
    overrides = dict(parse_override(text) for text in args.set)
    if getattr(args, "device", None):
        overrides["device"] = args.device
    for model in ("stylegan2", "stargan"):  # criterion's candidate
        if getattr(args, model, None):
            overrides[f"generate.{model}_weights"] = getattr(args, model)
    return load_config(args.preset, overrides)


def _cmd_world(cfg: Config, args: argparse.Namespace) -> int:
    from .facegen import write_world

    only = args.only.split(",") if args.only else None
    write_world(cfg, out=cfg.path(args.out) if args.out else None, only=only)
    return 0


def _cmd_check(cfg: Config, args: argparse.Namespace) -> int:
    from .inputs import check_inputs, check_table, configured_databases, stargan_note
    from .stale_cache import stale_folders, stale_note

    checks, problems = check_inputs(cfg, configured_databases(cfg), weights=True)
    print(f"settings: {args.preset} read, every key known and within its range")
    print(check_table(checks))
    if args.verify:  # the cache keys files by size and mtime; a same-size edit with its time restored hides there
        from .preprocess import verify_cache

        ready = [c.name for c in checks if c.state == "ok"]
        problems += [line for name in ready for line in verify_cache(cfg, name)]
        print(f"--verify: re-hashed every cached input file of {', '.join(ready) or 'no database'}")
    if not problems and stargan_note(cfg):
        print(stargan_note(cfg))
    print(stale_note(stale_folders(cfg, checks), _same_settings("clean-cache", args)))
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    print(f"{len(problems)} problem(s); nothing was written", file=sys.stderr if problems else sys.stdout)
    return 2 if problems else 0


def _same_settings(command: str, args: argparse.Namespace) -> str:
    """``command`` as a shell line with this invocation's ``--preset`` and ``--set`` flags: the same settings."""
    flags = ["--preset", args.preset, *(word for text in args.set for word in ("--set", text))]
    return shlex.join(["python", "-m", "fer_utils", command, *flags])


def _cmd_clean_cache(cfg: Config, args: argparse.Namespace) -> int:
    from .config import InputError
    from .inputs import check_inputs, configured_databases
    from .stale_cache import remove_stale, stale_folders

    if not cfg.path(cfg.data.cache).is_dir():  # a mistyped path must not read as "nothing stale"
        raise InputError(f"data.cache: {cfg.path(cfg.data.cache)} is not a folder: no crop cache to clean there")
    checks, _ = check_inputs(cfg, configured_databases(cfg))
    stale = stale_folders(cfg, checks)
    removed = remove_stale(stale, cfg.path(cfg.data.cache))
    for folder in stale:
        print(f"removed {folder.path} ({folder.megabytes:.1f} MB): {folder.why}")
    print(f"removed {len(removed)} stale crop-cache folder(s), {sum(s.megabytes for s in stale):.1f} MB; "
          "the folders in use and databases whose check failed were not touched")
    return 0


def _cmd_preprocess(cfg: Config, args: argparse.Namespace) -> int:
    from .inputs import prepare_inputs
    from .preprocess import preprocess_all

    prepare_inputs(cfg)
    preprocess_all(cfg)
    return 0


def _cmd_calibrate(cfg: Config, args: argparse.Namespace) -> int:
    from .calibrate import calibrate, calibration_table
    from .inputs import prepare_inputs

    prepare_inputs(cfg)
    print(calibration_table(calibrate(cfg)))
    return 0


def _cmd_train(cfg: Config, args: argparse.Namespace) -> int:
    from .experiments import run_experiment
    from .sweep import prepare_inputs

    ratio = args.ratio if args.ratio is not None else 1 if args.experiment == "synth" else 0
    prepare_inputs(cfg, [(args.experiment, ratio)])  # the world, the units this ratio trains on, the filter
    run_experiment(cfg, args.experiment, ratio=ratio, seed=args.seed)
    return 0


def _cmd_train_gan(cfg: Config, args: argparse.Namespace) -> int:
    from .gan.shipped import DATABASES, SHIPPED, ship
    from .gan.trainer import train_gan
    from .inputs import prepare_inputs

    prepare_inputs(cfg, [DATABASES[args.model]])

    init = None if args.init is None else SHIPPED[args.model] if args.init == "shipped" else Path(args.init)
    path = train_gan(cfg, args.model, resume=not args.restart, init=init)
    if args.ship:
        print(f"shipped: {ship(args.model, path)}")
    return 0


def _cmd_quality(cfg: Config, args: argparse.Namespace) -> int:
    from .facegen.people import WorldPeople
    from .gan.quality import quality_table, report_quality
    from .inputs import GAN_DATABASES, prepare_inputs

    prepare_inputs(cfg, GAN_DATABASES, weights=True)
    people = WorldPeople(cfg.world.seed, cfg.world.image_size)  # the identity check's known people
    print(quality_table(report_quality(cfg, people, ship=args.ship)))
    return 0


def _cmd_criterion(cfg: Config, args: argparse.Namespace) -> int:
    from .config import EXPERIMENT_DATABASES
    from .criterion import candidate_config, candidate_record, check_shipped_pair, criterion_table, record_criterion
    from .facegen.people import WorldPeople
    from .inputs import GAN_DATABASES, prepare_inputs

    folder, weights = candidate_config(cfg)
    if args.ship:
        check_shipped_pair(weights)
    gan_data = not args.skip_quality or args.controls  # the judge's faces; StarGAN on the world's identities
    prepare_inputs(cfg, [*EXPERIMENT_DATABASES, *(GAN_DATABASES if gan_data else [])], weights=True)
    people = WorldPeople(cfg.world.seed, cfg.world.image_size)  # the identity check's and the AU regressor's people
    seeds = tuple(range(cfg.train.seed, cfg.train.seed + args.seeds))
    record = candidate_record(cfg, people, quality=not args.skip_quality, seeds=seeds)
    print(criterion_table(record))
    if args.controls:
        from .criterion_controls import controls_table, step_differences, steps_table, teaching_controls
        record["controls"] = teaching_controls(cfg, people, seeds=seeds)
        record["steps"] = step_differences(record["controls"], record["teaching"])
        print(controls_table(record["controls"], record["teaching"]))
        print(steps_table(record["steps"]))
    for path in record_criterion(record, weights, Path(folder.results_dir), ship=args.ship):
        print(f"recorded in {path}")
    return 0


def _cmd_generate(cfg: Config, args: argparse.Namespace) -> int:
    from .gan.generate import generate_database
    from .inputs import prepare_inputs

    prepare_inputs(cfg, [], weights=True)
    generate_database(cfg)
    return 0


def _cmd_sweep(cfg: Config, args: argparse.Namespace) -> int:
    from .executors import check_executor
    from .sweep import prepare_inputs, run_sweep, sweep_estimate, sweep_plan, sweep_status

    plan = sweep_plan(cfg)
    if args.status:
        print(sweep_status(cfg, plan))
        return 0
    if args.plan:
        print(sweep_estimate(cfg, plan)[1])
        return 0
    check_executor(cfg, args.executor or cfg.sweep.executor, args.scheduler or "")  # before inputs take minutes
    unprepared = prepare_inputs(cfg, plan)  # once, here: the workers only read the world, the cache and the units
    plan = [config for config in plan if config not in unprepared]
    failures = run_sweep(cfg, plan, executor=args.executor, workers=args.workers or 0, scheduler=args.scheduler or "")
    for (experiment, ratio), why in unprepared.items():
        print(f"  {experiment} k={ratio} was not run: {why}")
    return 1 if failures or unprepared else 0


def _cmd_publish_notebooks(cfg: Config, args: argparse.Namespace) -> int:
    from .walkthroughs import publish_notebooks

    pages = publish_notebooks(cfg, cfg.path(args.executed))
    print(f"published {len(pages)} notebooks in {pages[0].parent}")
    return 0


def _cmd_bench(cfg: Config, args: argparse.Namespace) -> int:
    module = importlib.import_module(f"fer_utils.benchmarks.{args.target}")
    module.run(cfg)
    return 0


def _cmd_simulate_coverage(cfg: Config, args: argparse.Namespace) -> int:
    from .coverage import main as simulate_coverage

    if args.experiments < 10:
        raise InputError(f"--experiments {args.experiments}: need at least 10 simulated experiments per cell")
    return simulate_coverage(args.experiments)


def build_parser() -> argparse.ArgumentParser:
    """Describe every sub-command; ``--help`` on each explains its options."""
    parser = argparse.ArgumentParser(
        prog="python -m fer_utils",
        description="Reproduce 'How far Generated Data Can Impact Neural Networks Performance?' "
        "(VISAPP 2023) from the command line.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--preset", default="default",
                        help=f"{', '.join(PRESETS)} or a path to a params YAML (default: default)")
    common.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one parameter, e.g. --set train.epochs=3 (repeatable)")
    common.add_argument("--device", help="cpu, cuda or auto (default: from the preset)")

    p = sub.add_parser("world", parents=[common], help="write the embedded face world (six databases)")
    p.add_argument("--out", help="output folder (default: the data.* paths of the preset)")
    p.add_argument("--only", help="comma-separated subset: rafd,oulu,mmi,ckplus,affectnet,ffhq")
    p.set_defaults(func=_cmd_world)

    p = sub.add_parser("check", parents=[common],
                       help="check every setting, database and weights file, writing nothing "
                            "(start here with your data)")
    p.add_argument("--verify", action="store_true",
                   help="also re-hash the content of every input file of the crop cache, which keys files by size "
                        "and mtime (as make and rsync do), and name any whose content changed under them")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("clean-cache", parents=[common],
                       help="remove the crop-cache folders that check names stale: made for other inputs, settings "
                            "or cropping code, used by no configured database now")
    p.set_defaults(func=_cmd_clean_cache)

    p = sub.add_parser("preprocess", parents=[common],
                       help="detect, crop, gray and resize every database into the cache")
    p.set_defaults(func=_cmd_preprocess)

    p = sub.add_parser("calibrate", parents=[common],
                       help="how hard the world's task is: a linear baseline on the crops, in seconds")
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("train", parents=[common], help="train the Table-1 CNN for one experiment")
    p.add_argument("experiment", choices=list(EXPERIMENTS),
                   help="real = Exp 1, synth = Exp 2 (k units, default 1), mix = Exp 3 (needs --ratio), "
                        "mix-filtered = Exp 3 with generated faces a real-trained CNN reads as labelled, vgg = §4.4")
    p.add_argument("--ratio", type=int, default=None,
                   help="k: units of generated faces (per real unit); default 0 (real, vgg) or 1 (synth)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: train.seed)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("train-gan", parents=[common], help="train StyleGAN2 or StarGAN on the world")
    p.add_argument("model", choices=["stylegan2", "stargan"])
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="start from these weights, to train on in a later session with a new schedule: an "
                        "exported generator .safetensors ('shipped': the project's; a fresh discriminator) or "
                        "another run's checkpoint.pt (its discriminator too); unused when a checkpoint is resumed")
    p.add_argument("--ship", action="store_true",
                   help="copy the weights into fer_utils/gan/weights/ (the project's defaults) with provenance")
    p.set_defaults(func=_cmd_train_gan)

    p = sub.add_parser("quality", parents=[common],
                       help="measure the generators: expression transfer, identity kept, diversity, Frechet")
    p.add_argument("--ship", action="store_true", help="record the numbers in the shipped weights' provenance")
    p.set_defaults(func=_cmd_quality)

    p = sub.add_parser("criterion", parents=[common],
                       help="what a candidate generator's faces teach (experiment 2 on the real validation subjects), "
                            "with its quality, recorded beside the weights")
    p.add_argument("--stylegan2", metavar="WEIGHTS",
                   help="the candidate StyleGAN2 (default generate.stylegan2_weights)")
    p.add_argument("--stargan", metavar="WEIGHTS", help="the candidate StarGAN (default generate.stargan_weights)")
    p.add_argument("--skip-quality", action="store_true",
                   help="only the criterion and the moved-features measure (no judging CNN: minutes, not ~50 min "
                        "when the judge is not kept yet)")
    p.add_argument("--controls", action="store_true",
                   help="also the criterion's controls: rendered world persons at apex (what a perfect generator "
                        "would teach), the same in the AffectNet-like style and at its labels' intensities, the "
                        "candidate's neutral faces under six labels (chance), the candidate StarGAN on world "
                        "identities (what StyleGAN2's identities cost), StarGAN's own training faces (what its data "
                        "teach) and those farthest from neutral in valence and arousal; minutes each per seed")
    p.add_argument("--seeds", type=_at_least_one, default=1, metavar="N",
                   help="training seeds per arm, from train.seed on (default 1); with 2 or more the intervals "
                        "include the seeds' spread")
    p.add_argument("--ship", action="store_true",
                   help="also record it in the shipped weights' provenance (the shipped pair only); it is always "
                        "written as criterion.json in the candidate's folder, results/<preset>/criterion/<weights' "
                        "hashes>-psi<truncation>-seed<seed>/, and beside weights that are not shipped")
    p.set_defaults(func=_cmd_criterion)

    p = sub.add_parser("generate", parents=[common],
                       help="StyleGAN2 identities + StarGAN expressions -> generated database")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("sweep", parents=[common],
                       help="every arm (sweep.arms) at every ratio and seed (resumable), here or on many machines")
    p.add_argument("--executor", choices=EXECUTORS,
                   help="serial (in a row, here), local (worker processes here), dask (a cluster), slurm "
                        "(one job per run); default sweep.executor. docs/running.md")
    p.add_argument("--workers", type=int, help="local, and dask without --scheduler: worker processes "
                                               "(default sweep.workers; 0 = one per 2 cores)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask: a running scheduler, tcp://host:8786 (default sweep.scheduler; none = a local cluster)")
    p.add_argument("--status", action="store_true", help="print done / to do per configuration; run nothing")
    p.add_argument("--plan", action="store_true", help="print the runs to do and their expected CPU-hours; run nothing")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("publish-notebooks", parents=[common],
                       help="the executed notebooks as Markdown + figures (docs/notebooks for the default preset)")
    p.add_argument("--executed", default="results/notebooks", help="folder of executed notebooks (make reproduce's)")
    p.set_defaults(func=_cmd_publish_notebooks)

    p = sub.add_parser("bench", parents=[common], help="speed benchmarks, as ratios to a baseline")
    p.add_argument("target", choices=available_benchmarks())
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("simulate-coverage", parents=[common],
                       help="coverage and type-I error of the intervals on simulated data (docs/statistics.md)")
    p.add_argument("--experiments", type=int, default=400, help="simulated experiments per grid cell (default 400)")
    p.set_defaults(func=_cmd_simulate_coverage)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; settings, data-layout, weights, diverged-run and failed-write errors exit with status 2 and a
    one-line message; Ctrl-C (130) and SIGTERM (143) say what they stopped and how to resume."""
    args = build_parser().parse_args(argv)
    from .runtime import Stopped, stopping  # after --help, which needs no torch

    try:
        with stopping():
            return args.func(_config(args), args)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as Stopped: say what stopped and how to go on
        name = str(exc) if isinstance(exc, Stopped) else "SIGINT (Ctrl-C)"
        print(f"stopped by {name} during {getattr(exc, 'during', '') or args.command}; rerun the same command to "
              "resume: finished runs, units and checkpoints are kept", file=sys.stderr)
        return 143 if isinstance(exc, Stopped) else 130  # 128 + the signal's number, as a shell reports it
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write outside the atomic writers (the world's files, a lock): still one line
        from .runtime import write_failure

        error = write_failure(exc.filename or "a file", exc)
        if error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
