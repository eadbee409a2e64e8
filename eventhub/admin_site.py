"""The admin site: Django's, with the operations overview as its landing page.

Staff who may see the received messages land on the overview (`handlers.overview_admin`); the others get
Django's list of the models they may use. That list stays at `models/` for everyone, and in the
navigation sidebar of every other page.
"""

from django.contrib import admin
from django.urls import path

from handlers.overview_admin import overview_view


class EventhubAdminSite(admin.AdminSite):
    site_header = "Eventhub"
    site_title = "Eventhub"
    index_title = "Operations console"

    def index(self, request, extra_context=None):
        if not request.user.has_perm("queues.view_receivedmessage"):
            return super().index(request, extra_context)
        return overview_view(self, request)

    def get_urls(self):
        models = self.admin_view(super().index)
        return [path("models/", models, name="models"), *super().get_urls()]
