#!/usr/bin/env python3
"""Validates custom resources against their CustomResourceDefinition's OpenAPI v3 schema,
offline (kubernetes-validate ships the built-in kinds' schemas only).

    validate_crd.py CRD.yaml OBJECT.yaml...

Exit 0 when every object validates against the CRD version its apiVersion names."""
import sys

import jsonschema
import yaml


def schemas(crd_file):
    with open(crd_file) as f:
        crd = yaml.safe_load(f)
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    return {
        (f"{group}/{v['name']}", kind): v["schema"]["openAPIV3Schema"]
        for v in crd["spec"]["versions"]
    }


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    known = schemas(sys.argv[1])
    failed = False
    for path in sys.argv[2:]:
        with open(path) as f:
            for obj in yaml.safe_load_all(f):
                key = (obj.get("apiVersion"), obj.get("kind"))
                schema = known.get(key)
                if schema is None:
                    print(f"{path}: no schema for {key} in {sys.argv[1]}")
                    failed = True
                    continue
                errors = list(jsonschema.Draft7Validator(schema).iter_errors(obj))
                for e in errors:
                    print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
                failed |= bool(errors)
                if not errors:
                    print(f"{path}: {key[1]} {obj['metadata']['name']} valid against {key[0]}")
    sys.exit(1 if failed else 0)


main()
