"""A process of a two-rank job for tests/test_dist.py: runs a search, a training run or a
comparison through the library with the torchrun environment set by the test, then writes what
this rank ended with (alphas, genotype text, weights) to OUT_DIR/rank<R>.pt."""

import json
import os
import sys

import torch

torch.set_num_threads(1)


def main() -> None:
    job, out_dir = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3])
    rank = int(os.environ.get("RANK", "0"))
    if job == "search":
        from genolang.search.entry import run_search
        from genolang.search.recipe import SearchConfig

        result = run_search(SearchConfig(**args["config"]), run_dir=args["run_dir"], out=args.get("out"))
        alphas = {c: [list(row) for row in a.weights] for c, a in result.alphas.items()}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump({"alphas": alphas, "text": result.text}, fh)
    elif job == "train":
        from genolang.nets.compile import DataShape, build
        from genolang.run.runtime import seed_everything
        from genolang.spec.checked import GenotypeSpec, NetworkSpec
        from genolang.spec.lookup import load_named
        from genolang.train import default_recipe, train

        geno = load_named("genotype", args["genotype"])
        net = load_named("network", args["network"])
        assert isinstance(geno, GenotypeSpec)
        assert isinstance(net, NetworkSpec)
        recipe = default_recipe("digits", net).replace(**args["recipe"])
        seed_everything(recipe.seed)  # the weights the run starts from, as train() builds them
        initial = build(geno, net, DataShape("cnn", in_channels=1, input_size=8, classes=10)).state_dict()
        torch.save(initial, os.path.join(out_dir, f"initial{rank}.pt"))
        trained = train(geno, net, recipe, args["run_dir"], device="cpu")
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(trained.to_dict(), fh)
    elif job == "compare":
        from genolang.train.compare import CompareConfig, run_compare

        c = args["config"]
        comparison = run_compare(CompareConfig(tuple(c["genotypes"]), c["network"], "digits", tuple(c["seeds"]),
                                               options=c["options"], device="cpu"), out_dir=args["out_dir"])
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(comparison.to_json(), fh)
    else:
        raise SystemExit(f"unknown job {job}")


if __name__ == "__main__":
    main()
