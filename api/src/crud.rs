//! The handler template of a resource family: create, list, get and delete, each documented for
//! OpenAPI. `crud_handlers!` writes a module with the four handlers, so every family answers
//! the same way: `201` with the resource and `Location` on create, a `Page` for lists, `204` on
//! delete, and the usual error body otherwise. Each family lists the errors its create can
//! answer besides 400 (`create_errors`): 404 when the body names a resource that does not
//! exist, 409 for a conflict with what exists.
//!
//! A family is `shared` (the infrastructure, offerings: its service is called with the request
//! alone) or `owned` (images, L3 networks: resources an account may own, whose service calls
//! take who asks, `Caller::requester` for a create and `Caller::tenant` for the others).

/// A crud handler's service call: for a `shared` family with its argument alone, for an
/// `owned` one with who asks too (a create's requester, the others' tenant).
macro_rules! crud_call {
    (shared, $caller:ident, $e:ident.$svc:ident.$f:ident($arg:expr), $_kind:ident) => {{
        let _ = &$caller;
        $e.$svc.$f($arg)
    }};
    (owned, $caller:ident, $e:ident.$svc:ident.$f:ident($arg:expr), create) => {
        $e.$svc.$f($arg, $caller.requester())
    };
    (owned, $caller:ident, $e:ident.$svc:ident.$f:ident($arg:expr), scoped) => {
        $e.$svc.$f($arg, $caller.tenant())
    };
}

/// Writes `mod $m { create, list, get, delete }` for one resource family.
macro_rules! crud_handlers {
    (
        mod $m:ident {
            noun: $noun:tt,
            tag: $tag:tt,
            collection: $coll:tt,
            item: $item:tt,
            view: $view:ident,
            request: $req:ident,
            query: $query:ident,
            id: $id:ident,
            scope: $scope:ident,
            service: $svc:ident,
            create: $create_fn:ident,
            list: $list_fn:ident,
            get: $get_fn:ident,
            delete: $delete_fn:ident,
            create_errors: [$(($($create_error:tt)*)),* $(,)?] $(,)?
        }
    ) => {
        #[doc = concat!("Create, list, get and delete ", $noun, "s.")]
        pub mod $m {
            use axum::extract::State;
            use axum::http::header::LOCATION;
            use axum::http::StatusCode;
            use axum::Json;

            use super::*;
            use $crate::caller::Caller;
            use $crate::crud::crud_call;
            use $crate::error::{ApiError, ErrorBody};
            use $crate::extract::{ApiJson, ApiQuery, PathId};
            use $crate::queries::$query;
            use ::oxstack_engine::services::Page;
            use ::oxstack_engine::Engine;

            #[doc = concat!("Creates a ", $noun, ".")]
            #[utoipa::path(post, path = $coll, tag = $tag,
                operation_id = concat!("create_", stringify!($m)),
                summary = concat!("Create a ", $noun),
                request_body = $req,
                responses(
                    (status = 201, description = "Created", body = $view),
                    (status = 400, description = "Invalid request (names the field)", body = ErrorBody),
                    $(($($create_error)*),)*
                ))]
            pub async fn create(
                State(e): State<Engine>,
                caller: Caller,
                ApiJson(req): ApiJson<$req>,
            ) -> Result<(StatusCode, [(axum::http::HeaderName, String); 1], Json<$view>), ApiError>
            {
                let v = crud_call!($scope, caller, e.$svc.$create_fn(req), create).await?;
                let location = format!("{}/{}", $coll, v.uuid);
                Ok((StatusCode::CREATED, [(LOCATION, location)], Json(v)))
            }

            #[doc = concat!("Lists ", $noun, "s.")]
            #[utoipa::path(get, path = $coll, tag = $tag,
                operation_id = concat!("list_", stringify!($m)),
                summary = concat!("List ", $noun, "s"),
                params($query),
                responses(
                    (status = 200, description = "One page", body = Page<$view>),
                    (status = 400, description = "Bad filter or paging", body = ErrorBody),
                ))]
            pub async fn list(
                State(e): State<Engine>,
                caller: Caller,
                ApiQuery(q): ApiQuery<$query>,
            ) -> Result<Json<Page<$view>>, ApiError> {
                Ok(Json(crud_call!($scope, caller, e.$svc.$list_fn(&q.into()), scoped).await?))
            }

            #[doc = concat!("Gets one ", $noun, ".")]
            #[utoipa::path(get, path = $item, tag = $tag,
                operation_id = concat!("get_", stringify!($m)),
                summary = concat!("Get a ", $noun),
                params(("uuid" = uuid::Uuid, Path, description = concat!("The ", $noun))),
                responses(
                    (status = 200, description = "Found", body = $view),
                    (status = 400, description = "Bad UUID", body = ErrorBody),
                    (status = 404, description = "Not found", body = ErrorBody),
                ))]
            pub async fn get(
                State(e): State<Engine>,
                caller: Caller,
                PathId(id): PathId<$id>,
            ) -> Result<Json<$view>, ApiError> {
                Ok(Json(crud_call!($scope, caller, e.$svc.$get_fn(id), scoped).await?))
            }

            #[doc = concat!("Deletes a ", $noun, ".")]
            #[utoipa::path(delete, path = $item, tag = $tag,
                operation_id = concat!("delete_", stringify!($m)),
                summary = concat!("Delete a ", $noun),
                params(("uuid" = uuid::Uuid, Path, description = concat!("The ", $noun))),
                responses(
                    (status = 204, description = "Deleted"),
                    (status = 400, description = "Bad UUID", body = ErrorBody),
                    (status = 404, description = "Not found", body = ErrorBody),
                    (status = 409, description = "Still in use", body = ErrorBody),
                ))]
            pub async fn delete(
                State(e): State<Engine>,
                caller: Caller,
                PathId(id): PathId<$id>,
            ) -> Result<StatusCode, ApiError> {
                crud_call!($scope, caller, e.$svc.$delete_fn(id), scoped).await?;
                Ok(StatusCode::NO_CONTENT)
            }
        }
    };
}

pub(crate) use {crud_call, crud_handlers};
