from setuptools import find_packages, setup

package_name = 'v2x_http'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='V2X Alerts Maintainers',
    maintainer_email='maintainers@v2x-alerts.dev',
    description='The HTTP server of event_intake and v2x_console: uvicorn in a supervised '
                'thread with a request deadline, a keep-alive limit and a connection cap.',
    license='AGPL-3.0-only',
)
