# Sourced by the training scripts: the training split d2lv's models learn from, as manifests.
# `training_manifests DIR` writes a manifest of ../shared/data/ukbench and one of
# ../shared/data/bsds500/train (src/d2lv/synth/photos.py: TRAINING_FOLDERS) into DIR and sets the
# array `photos` to their paths. The benchmarks draw their photos from the other folders (no leakage).
training_manifests() {
    local work=$1 data=../shared/data
    photos=("$work/ukbench.parquet" "$work/bsds500-train.parquet")
    d2lv manifest -q "$data/ukbench" -o "${photos[0]}"
    d2lv manifest -q "$data/bsds500/train" -o "${photos[1]}"
}

# `training_manifests_tmp`: the same, into a temporary folder `work` that is removed when the script exits.
training_manifests_tmp() {
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    training_manifests "$work"
}
