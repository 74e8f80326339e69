"""The dashboard's routers, one job each: operations, sign-in, the ward, acknowledgements, FHIR intake."""
