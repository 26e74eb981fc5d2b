"""``kav datasets``: list, prepare or check the datasets the experiments read through TFDS.

* ``kav datasets list`` -- every dataset name, what it is, and whether it is prepared in the data
  dir (``--data-dir``, else ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``);
* ``kav datasets prepare NAME`` -- prepare ``NAME`` in the data dir: ``digits`` is built offline
  from scikit-learn; catalogue datasets are downloaded only with ``--download`` (needs network);
* ``kav datasets check NAME`` -- read ``NAME`` as the experiments do and print its split sizes,
  input shape and classes; exit status 2 with one ``error:`` line when it cannot be read offline.

Arguments are parsed before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kav datasets", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def with_data_dir(q):
        q.add_argument("--data-dir", default=None,
                       help="TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
        return q

    with_data_dir(sub.add_parser("list", help="dataset names, descriptions, prepared or not"))
    q = with_data_dir(sub.add_parser("prepare", help="prepare a dataset in the data dir"))
    q.add_argument("name")
    q.add_argument("--download", action="store_true",
                   help="allow TFDS to download a catalogue dataset (needs network)")
    q = with_data_dir(sub.add_parser("check", help="read a dataset as the experiments do"))
    q.add_argument("name")
    return p


def _prepared(datasets, name: str, data_dir: str | None) -> bool:
    spec = datasets.get(name)
    if spec.local_builder:
        from .digits_builder import SklearnDigits

        return SklearnDigits(data_dir=data_dir).is_prepared()
    try:
        datasets.ensure_available(name, data_dir)
    except datasets.DatasetNotPreparedError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import logging

    from . import datasets

    absl = logging.getLogger("absl")
    if absl.getEffectiveLevel() >= logging.WARNING:
        # TFDS warns "Variant folder ... has no dataset_info.json" when it looks for a dataset
        # that is not prepared; here that is the answer, said once (list) or as the error line.
        absl.setLevel(logging.ERROR)

    try:
        if args.action == "list":
            for name in datasets.names():
                spec = datasets.get(name)
                state = "prepared" if _prepared(datasets, name, args.data_dir) else "not prepared"
                offline = " (offline default)" if spec.local_builder else ""
                print(f"{name:<14} {state:<13} TFDS {spec.tfds_name}{offline}: {spec.description}")
            return 0
        spec = datasets.get(args.name)
        if args.action == "prepare":
            if not spec.local_builder and args.download:
                import tensorflow_datasets as tfds

                tfds.builder(spec.tfds_name, data_dir=args.data_dir).download_and_prepare()
            data = datasets.load(args.name, data_dir=args.data_dir)
            print(f"{args.name}: prepared in {data.builder.data_dir}")
            return 0
        data = datasets.load(args.name, data_dir=args.data_dir)
        print(f"{args.name}: OK -- TFDS {spec.tfds_name} {data.version}, train {data.num_train} / "
              f"test {data.num_test} examples, input shape {data.input_shape}, "
              f"{data.num_classes} classes, in {data.builder.data_dir}")
        return 0
    except (ValueError, datasets.DatasetNotPreparedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
