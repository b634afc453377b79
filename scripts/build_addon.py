"""Build the Blender extension zip: ``dist/tar_mocap-<version>.zip``.

The zip's root is the add-on (tar_blender's modules and blender_manifest.toml) plus the engine
(``tar_core`` with its data files), which the add-on runs as a subprocess. It is built and then
validated with Blender's own extension tool (from the bpy wheel), tags checked as Blender does.

    python scripts/build_addon.py [--out-dir dist]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def blender_tools() -> tuple[Path, Path]:
    """blender_ext.py and the tags file shipped inside the bpy wheel."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the bpy module is needed for Blender's extension tool (pip install bpy==5.0.1)")
    base = Path(next(iter(spec.submodule_search_locations)))
    version_dirs = sorted(p for p in base.iterdir() if p.is_dir() and p.name[:1].isdigit())
    scripts = version_dirs[-1] / "scripts"
    return (scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py",
            scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py")


def stage(dest: Path) -> None:
    shutil.copytree(ROOT / "tar_blender", dest, ignore=IGNORE, dirs_exist_ok=True)
    shutil.copy2(ROOT / "blender_manifest.toml", dest / "blender_manifest.toml")
    shutil.copytree(ROOT / "tar_core", dest / "tar_core", ignore=IGNORE)
    for extra in ("LICENSE", "README.md"):
        if (ROOT / extra).is_file():
            shutil.copy2(ROOT / extra, dest / extra)


def build(out_dir: Path) -> Path:
    ext, tags = blender_tools()
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    with tempfile.TemporaryDirectory(prefix="tar-addon-") as tmp:
        src = Path(tmp) / manifest["id"]
        stage(src)
        tmp_zip = Path(tmp) / target.name
        subprocess.run([sys.executable, str(ext), "build", "--source-dir", str(src), "--output-filepath",
                        str(tmp_zip), "--valid-tags", str(tags)], check=True)
        subprocess.run([sys.executable, str(ext), "validate", str(tmp_zip), "--valid-tags", str(tags)], check=True)
        shutil.move(str(tmp_zip), target)  # only a validated zip lands in dist/
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=ROOT / "dist")
    args = ap.parse_args(argv)
    path = build(args.out_dir)
    print(f"built {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
