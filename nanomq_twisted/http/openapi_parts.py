"""
The building blocks of the OpenAPI document (openapi.py for NanoMQ's
paths, openapi_additions.py for ours): references, JSON bodies, the
``{"code":0,"data":...}`` envelope, operations with the 401/404 answers
every path has, and parameters.
"""


def ref(name):
    return {"$ref": "#/components/schemas/" + name}


def json_content(schema):
    return {"application/json": {"schema": schema}}


def result(description="Result code only"):
    return {"description": description, "content": json_content(ref("Result"))}


def data(schema, description="Success"):
    return {
        "description": description,
        "content": json_content({
            "type": "object",
            "required": ["code", "data"],
            "properties": {"code": {"type": "integer", "enum": [0]}, "data": schema},
        }),
    }


ERRORS = {
    "401": {"description": "Not authenticated (103, 104, 116)",
            "content": json_content(ref("Result"))},
    "404": {"description": "Unknown path or method (102)", "content": json_content(ref("Result"))},
}


def op(summary, responses, body=None, parameters=None, body_type="application/json"):
    """One operation; every one may also answer 401 and 404."""
    operation = {"summary": summary, "responses": dict(responses, **ERRORS)}
    if body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {body_type: {"schema": body}}}
    if parameters:
        operation["parameters"] = parameters
    return operation


def path_param(name, description):
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def query(name, schema, description):
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}
