from django.contrib import admin
from django.utils.translation import gettext_lazy

from portal.models import ProfileDocument
from riskops.admin_base import ReadOnlyAdmin


@admin.register(ProfileDocument)
class ProfileDocumentAdmin(ReadOnlyAdmin):
    # The names stay out, as an appeal document's: the borrower's file name may carry their name.
    list_display = ("id", "line", "content_type", "size", "uploaded_at")
    list_select_related = ("line",)
    exclude = ("stored_name", "original_name")
    search_fields = ("=id", "=upstream_id")
    search_help_text = gettext_lazy(
        "A document id, or the profile update's upstream id typed whole; or an account number typed whole."
    )
    line_field = "line"
