"""The shape of the code: no import cycle between any two modules, and none between packages."""

from __future__ import annotations

import grimp


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("ccgate")
    cycles = sorted({tuple(sorted((module, imported)))
                     for module in graph.modules
                     for imported in graph.find_modules_directly_imported_by(module)
                     if graph.chain_exists(importer=imported, imported=module)})
    assert cycles == []


def test_no_package_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("ccgate")
    packages = {module.split(".")[1] for module in graph.modules if module.count(".") >= 1}
    tangled = sorted((a, b) for a in packages for b in packages if a < b
                     and graph.chain_exists(importer=f"ccgate.{a}", imported=f"ccgate.{b}", as_packages=True)
                     and graph.chain_exists(importer=f"ccgate.{b}", imported=f"ccgate.{a}", as_packages=True))
    assert tangled == []
