#!/bin/sh
# Terraform's own checks of terraform/, run by `make test` (make tf-check):
#
#   terraform fmt -check, then on a copy of the module under .tmp/:
#   init -backend=false, validate (the module, examples/basic and
#   examples/shared_vpc), and terraform test (terraform/tests/*.tftest.hcl
#   with mock providers, and each example's tests with its own
#   terraform.tfvars.example).
#
# Providers come from TF_PLUGIN_DIR if set; else from TF_PLUGIN_ARCHIVE
# (default ../shared/terraform-plugins/plugins.tar.xz beside the checkout),
# extracted once into .tmp/terraform-plugins; else from the registry, as a
# user with network has them. The checks run on a copy so that a deploying
# user's terraform/.terraform and lock file are never touched, and no lock
# file made from the offline providers lands in the checkout. Where
# terraform or the providers are missing, this prints
# "terraform checks SKIPPED: <why>" and exits 0.
#
#   local/terraform-check.sh            run the checks
#   local/terraform-check.sh prepare D  copy the module to D/terraform and
#                                       init it (for local/tfcheck's tests);
#                                       exits 3 after the SKIPPED line when
#                                       it cannot
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
mode=check
if [ "${1:-}" = prepare ]; then
	mode=prepare
	[ -n "${2:-}" ] || { echo "usage: $0 prepare DIR" >&2; exit 2; }
	dest=$2
fi

skip() {
	echo "terraform checks SKIPPED: $*"
	[ "$mode" = prepare ] && exit 3
	exit 0
}

# A CLI config path that does not exist only produces a warning per command.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "$TF_CLI_CONFIG_FILE" ]; then
	unset TF_CLI_CONFIG_FILE
fi
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0

command -v terraform >/dev/null 2>&1 || skip "terraform is not on PATH"

# --- providers -------------------------------------------------------------

plugin_dir=
if [ -n "${TF_PLUGIN_DIR:-}" ]; then
	[ -d "$TF_PLUGIN_DIR" ] || skip "TF_PLUGIN_DIR=$TF_PLUGIN_DIR is not a directory"
	plugin_dir=$(cd "$TF_PLUGIN_DIR" && pwd)
else
	archive=${TF_PLUGIN_ARCHIVE:-$root/../shared/terraform-plugins/plugins.tar.xz}
	if [ -f "$archive" ]; then
		plugin_dir=$root/.tmp/terraform-plugins
		stamp=$plugin_dir/.extracted-from
		want="$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive") $(wc -c <"$archive" | tr -d ' ')"
		if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
			mkdir -p "$root/.tmp"
			tmp=$(mktemp -d "$root/.tmp/terraform-plugins.XXXXXX")
			if ! tar -xJf "$archive" -C "$tmp"; then
				rm -rf "$tmp"
				skip "cannot extract $archive"
			fi
			echo "$want" >"$tmp/.extracted-from"
			rm -rf "$plugin_dir"
			mv "$tmp" "$plugin_dir"
			# Another run may have put its copy there first: then ours
			# landed inside it.
			rm -rf "$plugin_dir/$(basename "$tmp")"
		fi
	fi
fi

# --- a copy of the module --------------------------------------------------

if [ "$mode" = check ]; then
	mkdir -p "$root/.tmp"
	dest=$(mktemp -d "$root/.tmp/terraform-check.XXXXXX")
	trap 'rm -rf "$dest"' EXIT
fi
mod=$dest/terraform
rm -rf "$mod"
mkdir -p "$dest"
cp -R "$root/terraform" "$mod"
# The module archives the directory above it by default (source_dir), as
# in a checkout: the examples' plans build their archive from these.
(cd "$root" && tar -cf - go.mod go.sum ./*.go functions shared) | (cd "$dest" && tar -xf -)
# Whatever a user's own runs left in terraform/ stays out of the copy.
find "$mod" \( -name .terraform -o -name '.terraform.lock.hcl' -o -name '*.tfstate' -o -name '*.tfstate.*' -o -name terraform.tfvars \) -prune -exec rm -rf {} +

# init with the offline providers, or the registry when there are none.
tf_init() {
	dir=$1
	if [ -n "$plugin_dir" ]; then
		terraform -chdir="$dir" init -no-color -backend=false -input=false -plugin-dir="$plugin_dir" >"$dest/init.log" 2>&1 ||
			{ cat "$dest/init.log"; echo "terraform init failed in ${dir#"$dest"/} (providers from $plugin_dir)"; return 1; }
	else
		terraform -chdir="$dir" init -no-color -backend=false -input=false >"$dest/init.log" 2>&1 ||
			skip "no TF_PLUGIN_DIR, no provider archive at ${TF_PLUGIN_ARCHIVE:-../shared/terraform-plugins/plugins.tar.xz}, and terraform init could not install providers from the registry ($(grep -m 1 '^Error:' "$dest/init.log" | sed 's/^Error: //'))"
	fi
}

if [ "$mode" = prepare ]; then
	tf_init "$mod"
	echo "$mod"
	exit 0
fi

# --- the checks ------------------------------------------------------------

start=$(date +%s)
nocolor=
[ -t 1 ] || nocolor=-no-color
echo "terraform checks: $(terraform version | head -n 1), providers from ${plugin_dir:-the registry}"

# Formatting needs no provider, and it parses every file first.
if ! terraform -chdir="$mod" fmt -check -recursive -diff; then
	echo "terraform fmt: the files above are not in canonical format (run make tf-fmt)"
	exit 1
fi

tf_init "$mod"
printf 'terraform/: '
terraform -chdir="$mod" validate -no-color

for ex in basic shared_vpc; do
	tf_init "$mod/examples/$ex"
	printf 'terraform/examples/%s: ' "$ex"
	terraform -chdir="$mod/examples/$ex" validate -no-color
done

# The module's tests plan it with mock providers; the archive of the
# functions' source is built from the real checkout.
terraform -chdir="$mod" test $nocolor -var "source_dir=$root"
for ex in basic shared_vpc; do
	terraform -chdir="$mod/examples/$ex" test $nocolor -var-file=terraform.tfvars.example
done

echo "terraform checks passed in $(($(date +%s) - start)) s"
